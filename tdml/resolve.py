"""The one config resolver: every layer of settings -> one frozen, typed run config.

A run config is resolved once, before any training, and that resolved config is what a
run logs. Layers, lowest first (a later layer wins key by key):

1. class defaults       the run-config dataclasses and the loss's ``Config``; a window
                        left at 0 gets the dataset kind's (``tdml.data.WINDOW_DEFAULTS``,
                        "dataset default"); then the entry point's own defaults
                        (``ENTRY_DEFAULTS``: the main job's demo window)
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

Each resolver can report where every value came from (``sources=``: dotted key -> layer name);
runs log it as ``config_sources.json`` and ``--dry-run`` prints it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tdml.config import (DataConfig, DistillRunConfig, TeacherRunConfig, coerce_dataclass, deep_merge,
                         flatten, to_dict)
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


def resolve_teacher(layers: Layers | dict[str, Any], sources: dict[str, str] | None = None) -> TeacherRunConfig:
    """Teacher run config: class defaults < the dataset kind's window < table[model][dataset] <
    the layers. ``sources`` (if given) is filled with the layer each value came from."""
    raw = _merged(layers)
    data = coerce_dataclass(DataConfig, raw.get("data", {}), "data")
    window = _window(data)
    model = raw.get("model", TeacherRunConfig.model)
    table = {"model_params": default_params(model, data.label), "train": default_train(model, data.label)}
    cfg = coerce_dataclass(TeacherRunConfig, deep_merge(deep_merge(window, table), raw), "teacher")
    if sources is not None:
        sources.update(config_sources(cfg, [("dataset default", window), ("defaults table", table), *_named(layers)]))
    return cfg


def _window(data: DataConfig) -> dict[str, Any]:
    """{"data": {seq_len, pred_len}} for the values the config leaves at 0 (the kind's defaults)."""
    from tdml.data import WINDOW_DEFAULTS, kind_of

    defaults = WINDOW_DEFAULTS.get(kind_of(data.dataset), {})
    return {"data": {k: v for k, v in defaults.items() if not getattr(data, k)}}


LAYER_NAMES = ("entry default", "study base", "trial", "explicit", "run mode")


def _named(layers: Layers | dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(layers, Layers):
        return [("explicit", layers)]
    return list(zip(LAYER_NAMES, (layers.entry, layers.study_base, layers.trial, layers.explicit, layers.run_mode)))


def config_sources(cfg, layers: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Each value of the resolved ``cfg`` (dotted key) -> the last layer that set it, lowest
    first; a value no layer set is a ``class default``."""
    out = {}
    for key in flatten(to_dict(cfg)):
        out[key] = "class default"
        for name, layer in layers:
            if _sets(layer or {}, key):
                out[key] = name
    return out


def _sets(layer: dict[str, Any], dotted: str) -> bool:
    node: Any = layer
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def resolve_distill(layers: Layers | dict[str, Any], teacher_meta: dict[str, Any] | None = None,
                    sources: dict[str, str] | None = None) -> DistillRunConfig:
    """Distill run config for a teacher whose registered metadata is ``teacher_meta``.

    Without metadata (static checks of a study before its teacher exists) the data settings
    come from the layers alone and the task is forecasting. ``sources`` as in ``resolve_teacher``.
    """
    from tdml.losses import LOSSES  # the loss registry is filled by importing tdml.losses
    from tdml.tasks import TASKS

    raw = _merged(layers)
    meta = teacher_meta or {}
    given = {k: v for k, v in raw.get("data", {}).items() if not (k in INHERIT_ZERO and v in (0, "0"))}
    data = coerce_dataclass(DataConfig, {**meta.get("data_config", {}), **given}, "data")
    window = _window(data)
    data = dataclasses.replace(data, **window["data"])
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
    if sources is not None:
        inherited = {"data": meta.get("data_config", {}), "student": student if not raw.get("student") else None,
                     "method": method if not raw.get("method") else None}
        sources.update(config_sources(cfg, [("teacher's data" if meta else "dataset default", {"data": inherited["data"]}),
                                            ("dataset default", window),
                                            ("teacher's task", {k: v for k, v in inherited.items()
                                                                if k != "data" and v is not None}),
                                            ("defaults table", table), *_named(layers)]))
    return cfg


def resolve_condense(layers: Layers | dict[str, Any], sources: dict[str, str] | None = None):
    """Condense run config: class defaults < the method's plug-in defaults < the layers."""
    from tdml.condensation.config import CondenseRunConfig
    from tdml.condensation.methods import method_defaults
    from tdml.errors import ConfigError

    raw = _merged(layers)
    method = raw.get("method", CondenseRunConfig.method)
    if not isinstance(method, str):
        raise ConfigError(f"method must be a string such as mtt+ddtime, got {method!r}")
    protocol = raw.get("protocol", CondenseRunConfig.protocol)
    if not isinstance(protocol, str):
        raise ConfigError(f"protocol must be a string such as published, got {protocol!r}")
    table = method_defaults(method, protocol)
    cfg = coerce_dataclass(CondenseRunConfig, deep_merge(table, raw), "condense")
    if sources is not None:
        sources.update(config_sources(cfg, [("defaults table", table), *_named(layers)]))
    return cfg


def _merged(layers: Layers | dict[str, Any]) -> dict[str, Any]:
    return layers.merged() if isinstance(layers, Layers) else deep_merge({}, layers)

