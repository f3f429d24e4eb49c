"""The ``condense`` study kind for ``tdml tune`` (registered in tdml.tuning.kinds.KINDS).

The search space names CondenseRunConfig paths, like every kind's: ``ddtime.*`` (alpha, lam,
tau, value_weight, representation: the plug-in terms), ``match.*`` (inner_lr, series_lr,
syn_steps, ...: the matching optimisation), ``condtsf.beta``, ``n_windows``, ...; ``base``
holds fixed CondenseRunConfig fields.
Trials are validation-only (``tracking.final_split=val``): the objective is the validation
MSE of fresh models trained on the selected synthetic set; the test split is never read.
The pruner sees each candidate's validation score. Experts are trained (or found) once in
``prepare`` and reused by every trial through their fingerprint.
"""

from __future__ import annotations

from typing import Any

from tdml.condensation.config import CondenseRunConfig
from tdml.condensation.experts import get_experts
from tdml.runs.condense import condense_in_run
from tdml.resolve import Layers, resolve_condense
from tdml.config import deep_merge
from tdml.data import load_data
from tdml.runs.common import RunSummary
from tdml.errors import ConfigError
from tdml.train import resolve_device
from tdml.tuning.kinds import KINDS, StudyKind, check_space


@KINDS.register("condense")
class CondenseKind(StudyKind):
    seed_path = "seed"  # the condensation's seed (CondenseRunConfig.seed)

    def _base(self) -> dict[str, Any]:
        base = deep_merge(self.spec.base, {"data": dict(self.spec.data)} if self.spec.data else {})
        train = base.pop("train", {})  # `tdml tune --no-progress` sets base.train.progress
        if set(train) - {"progress"}:
            raise ConfigError(f"a condense study's base has no `train` section ({', '.join(train)}); "
                              f"use base.match / base.experts / base.eval")
        if "progress" in train:
            base["progress"] = train["progress"]
        return base

    def validate(self) -> None:
        check_space(self.spec, CondenseRunConfig, {},
                    lambda o: resolve_condense(deep_merge(self._base(), o)))  # unknown keys / bad values fail here
        for o in self.spec.objectives:
            if not o.metric.startswith("val_"):
                raise ConfigError(f"objective {o.metric!r}: a condense study is scored on validation only; "
                                  f"use val_mse or val_mae (or val_mse_<eval model>)")
        if self.spec.finalize:
            raise ConfigError("a condense study registers no model: set `finalize: false` (the best trial's "
                              "synthetic set is runs:/<its run id>/synthetic; test it with `tdml condense "
                              "--set ...` using its parameters)")

    def prepare(self) -> None:
        cfg = resolve_condense(self._base())
        if cfg.method.startswith("random") or cfg.experts_uri not in ("", "new"):
            return
        data = load_data(cfg.data)
        get_experts("", data, cfg.data, cfg.experts, resolve_device("auto"), False)  # trained once, here

    def run(self, overrides: dict[str, Any], callbacks, final: bool):
        base = self._base()
        mode = {"tracking": {"final_split": "test" if final else "val"}}
        if base.get("experts_uri", "") == "new":
            mode["experts_uri"] = ""  # one expert set per study, not per trial
        cfg = resolve_condense(Layers(study_base=base, trial=overrides, run_mode=mode))
        s = condense_in_run(cfg, callbacks)
        # the tuning loop reads a tdml.runs.common.RunSummary (metrics, n_params = the first eval model's)
        return RunSummary(s.run_id, "condense", cfg.eval.models[0], s.metrics, int(s.metrics["n_params"]), 0.0,
                          extra={"condense": s})

