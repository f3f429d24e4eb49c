"""The ``distill`` study kind: a TimeDistill (or any registered loss) student against one
registered teacher; the search space is checked against the loss's ``Config``, ``TrainConfig``
and the student's ``Params`` before anything runs."""

from __future__ import annotations

from typing import Any

from tdml import tracking
from tdml.runs.common import RunSummary
from tdml.runs.distill import distill_in_run
from tdml.runs.teacher import train_teacher_in_run
from tdml.config import DistillRunConfig, coerce_dataclass, deep_merge
from tdml.errors import ConfigError, RegistryError
from tdml.resolve import Layers, resolve_distill, resolve_teacher
from tdml.tuning.kinds import KINDS, StudyKind, check_space


RUN_METRICS = ("n_params", "cpu_latency_ms_b32", "param_ratio", "speedup")


@KINDS.register("distill")
class DistillKind(StudyKind):
    """A TimeDistill (or any registered loss) student against one registered teacher."""

    def validate(self) -> None:
        from tdml.losses import LOSSES
        from tdml.models import MODELS

        s = self.spec
        layers = Layers(study_base={**s.base, "teacher": s.teacher or "models:/x@y"})
        base = resolve_distill(layers)
        student = s.search_space.params.get("student")
        for st in student.corners() if student else [base.student]:
            sections = {"loss": LOSSES.get(base.method).Config, "student_params": MODELS.get(st).Params}
            fixed = {"student": st} if student else {}
            check_space(s, DistillRunConfig, sections,
                        lambda o: self._resolve(Layers(study_base=layers.study_base, trial=deep_merge(fixed, o))))
        if not s.teacher:
            raise ConfigError("study: `teacher` is required (models:/<name>@<alias>); add a "
                              "`train_teacher:` block to have a missing one trained first")
        tracking.parse_model_uri(s.teacher)
        if s.train_teacher is not None:
            resolve_teacher(s.train_teacher)  # unknown keys / bad values fail now, not later
        for o in s.objectives:
            if not (o.metric.startswith("val_") or o.metric in RUN_METRICS):
                raise ConfigError(f"objective metric {o.metric!r} is not available to a distill study; "
                                  f"use val_<metric> (e.g. val_mse, val_mae) or one of {', '.join(RUN_METRICS)}")

    @staticmethod
    def _resolve(layers: Layers) -> DistillRunConfig:
        """A trial's run config, the student's params included (they are checked when it is built)."""
        from tdml.models import MODELS

        cfg = resolve_distill(layers)
        coerce_dataclass(MODELS.get(cfg.student).Params, cfg.student_params, f"student_params ({cfg.student})")
        return cfg

    def prepare(self) -> None:
        s = self.spec
        try:
            tracking.resolve_version(s.teacher)
            return
        except RegistryError as e:
            if s.train_teacher is None:
                raise ConfigError(f"study {s.name!r}: teacher {s.teacher} cannot be resolved ({e}). Train "
                                  f"and register it first (tdml train-teacher ...), or add a "
                                  f"`train_teacher:` block to the study to train it now") from None
        name, alias, _ = tracking.parse_model_uri(s.teacher)
        raw = deep_merge(s.train_teacher, {"tracking": {"alias": alias or "champion"}})
        with tracking.start_run("", "teacher", "teacher", {"tdml.study": s.name}, nested=True):
            t = train_teacher_in_run(raw)
        got = t.registered_name
        if got != name:
            raise ConfigError(f"study {s.name!r}: train_teacher registered {got!r} but teacher is "
                              f"{s.teacher}; make the train_teacher data/model match the URI's name")

    def run(self, overrides: dict[str, Any], callbacks, final: bool) -> RunSummary:
        return distill_in_run(self.layers(overrides, final), callbacks)

    def layers(self, overrides: dict[str, Any], final: bool) -> Layers:
        """A trial's settings: the study's base and data < the trial's values < the run mode."""
        s = self.spec
        base = {**s.base, "teacher": s.teacher, **({"data": deep_merge(s.base.get("data", {}), s.data)} if s.data else {})}
        # trials keep metrics, terms and CSV diagnostics; the HTML report only for final runs
        mode = {"tracking": {"final_split": "test" if final else "val", "register": final, "log_model": final, "alias": "",
                             "diagnostics_html": final}}
        return Layers(study_base=base, trial=overrides, run_mode=mode)
