"""The one config resolver: every layer of settings -> one frozen, typed run config.

A run config is resolved once, before any training, and that resolved config is what a
run logs. Layers, lowest first (a later layer wins key by key):

1. class defaults       the run-config dataclasses and the loss's ``Config``;
                        then the entry point's own defaults (``ENTRY_DEFAULTS``: the main
                        job's demo window)
2. defaults table       ``tdml/models/defaults.yaml`` [model][dataset]: model params,
                        ``train`` and, for students, ``loss`` (``<method>@<teacher>`` wins)
3. study base           a study spec's ``base:`` and ``data:``
4. trial                the values an Optuna trial suggested
5. explicit             CLI options, ``-P``, ``--config``, ``--set``
6. run mode             what the entry point itself fixes (a search trial reads validation
                        and registers nothing); never set by users

A condense run's table layer is its method's plug-in defaults (``tdml.condensation.methods``).
For a distill run the data settings start from the teacher's registered data config
(between 1 and 2), so ``-P teacher=...`` alone is a complete run, and the dataset that
picks table rows is the resolved one: the teacher's own when inherited. The student and
the method default to the teacher's task's (``tdml.tasks.Task.default_student``). A loss
whose ``Config`` has a ``seed`` field (MemKD's pair sampling) left unset gets the run's
``train.seed``, so the logged config holds the seed the loss draws with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tdml.config import (DataConfig, DistillRunConfig, TeacherRunConfig, coerce_dataclass, deep_merge,
                         to_dict)
from tdml.models.defaults import default_loss, default_params, default_train

# seq_len / pred_len 0 in a distill run's data layer = "the teacher's own" (MLproject default)
INHERIT_ZERO = ("seq_len", "pred_len")


# The main job demonstrates distillation in the regime the paper studies: a lookback long
# against the horizon (the MLP alone then over-fits, and a teacher's targets help); the
# paper's own L = 720 costs more than a demo on 2 CPU cores should.
ENTRY_DEFAULTS: dict[str, dict[str, Any]] = {"main": {"data": {"seq_len": 336, "pred_len": 96}}}


@dataclass(frozen=True)
class Layers:
    """The user-facing layers of settings (3-5 above) plus the entry point's run mode (6);
    ``entry`` holds the entry point's own defaults (1)."""

    entry: dict[str, Any] = field(default_factory=dict)
    study_base: dict[str, Any] = field(default_factory=dict)
    trial: dict[str, Any] = field(default_factory=dict)
    explicit: dict[str, Any] = field(default_factory=dict)
    run_mode: dict[str, Any] = field(default_factory=dict)

    def merged(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for layer in (self.entry, self.study_base, self.trial, self.explicit, self.run_mode):
            out = deep_merge(out, layer or {})
        return out


def resolve_teacher(layers: Layers | dict[str, Any]) -> TeacherRunConfig:
    """Teacher run config: class defaults < table[model][dataset] < the layers."""
    raw = _merged(layers)
    data = coerce_dataclass(DataConfig, raw.get("data", {}), "data")
    model = raw.get("model", TeacherRunConfig.model)
    table = {"model_params": default_params(model, data.label), "train": default_train(model, data.label)}
    return coerce_dataclass(TeacherRunConfig, deep_merge(table, raw), "teacher")


def resolve_distill(layers: Layers | dict[str, Any], teacher_meta: dict[str, Any] | None = None) -> DistillRunConfig:
    """Distill run config for a teacher whose registered metadata is ``teacher_meta``.

    Without metadata (static checks of a study before its teacher exists) the data settings
    come from the layers alone and the task is forecasting.
    """
    from tdml.losses import LOSSES  # the loss registry is filled by importing tdml.losses
    from tdml.tasks import TASKS

    raw = _merged(layers)
    meta = teacher_meta or {}
    given = {k: v for k, v in raw.get("data", {}).items() if not (k in INHERIT_ZERO and v in (0, "0"))}
    data = coerce_dataclass(DataConfig, {**meta.get("data_config", {}), **given}, "data")
    task = TASKS.get(meta.get("task", "forecast"))
    student = raw.get("student") or task.default_student
    method = raw.get("method") or task.default_method
    teacher_model = meta.get("model", {}).get("name", "")
    table = {"student_params": default_params(student, data.label), "train": default_train(student, data.label),
             "loss": default_loss(student, data.label, method, teacher_model)}
    cfg_raw = deep_merge(table, {**raw, "student": student, "method": method, "data": to_dict(data)})
    # the loss's own Config validates its fields now (bad weights fail before any training)
    loss_cls = LOSSES.get(method)
    cfg_raw["loss"] = to_dict(coerce_dataclass(loss_cls.Config, cfg_raw.get("loss", {}), f"loss ({method})"))
    cfg = coerce_dataclass(DistillRunConfig, cfg_raw, "distill")
    if "seed" in cfg.loss and cfg.loss["seed"] is None:  # the loss draws with the run's seed
        cfg = dataclasses.replace(cfg, loss={**cfg.loss, "seed": cfg.train.seed})
    return cfg


def resolve_condense(layers: Layers | dict[str, Any]):
    """Condense run config: class defaults < the method's plug-in defaults < the layers."""
    from tdml.condensation.config import CondenseRunConfig
    from tdml.condensation.methods import method_defaults
    from tdml.errors import ConfigError

    raw = _merged(layers)
    method = raw.get("method", CondenseRunConfig.method)
    if not isinstance(method, str):
        raise ConfigError(f"method must be a string such as mtt+ddtime, got {method!r}")
    return coerce_dataclass(CondenseRunConfig, deep_merge(method_defaults(method), raw), "condense")


def _merged(layers: Layers | dict[str, Any]) -> dict[str, Any]:
    return layers.merged() if isinstance(layers, Layers) else deep_merge({}, layers)

