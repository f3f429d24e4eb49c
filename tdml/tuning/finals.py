"""After the search: the best trial(s) re-run once on test (registering a version, moving no
alias), then the promotion gate every registering run goes through (``tdml.promotion``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
from optuna.trial import FixedTrial

from tdml import tracking
from tdml.errors import ConfigError, TdmlError
from tdml.promotion import gate
from tdml.studies import StudySpec
from tdml.tasks import better
from tdml.tuning.kinds import StudyKind


def final_run(spec: StudySpec, kind: StudyKind, study: optuna.Study, parent_run_id: str,
              best: dict[str, Any]) -> dict[str, Any]:
    """Re-run a best trial's config once, scored on test, registering a version (no alias)."""
    overrides = kind.search_space(FixedTrial(best["params"]))
    tags = {"tdml.study": spec.name, "tdml.trial_number": best["number"], "tdml.trial_run_id": best["mlflow_run_id"]}
    with tracking.start_run("", f"final · trial {best['number']} · {spec.name}", "final", tags, parent_run_id=parent_run_id):
        s = kind.run(overrides, [], final=True)
    if s.version is None:
        raise TdmlError("the final run registered no model; check tracking.register in the study base")
    name = s.registered_name
    tracking.set_version_tags(name, s.version, {"tdml.study": spec.name, "tdml.trial_number": best["number"]})
    out = {"number": best["number"], "run_id": s.run_id, "registered_name": name, "version": s.version,
           "metrics": {k: v for k, v in s.metrics.items() if k.startswith(("test_", "best_val_"))}}
    tracking.log_metrics({f"final_{k}": v for k, v in out["metrics"].items()})
    study.set_user_attr(f"final_trial_{best['number']}", {"run_id": s.run_id, "version": s.version})
    return out


def promote(spec: StudySpec, finals: list[dict[str, Any]]) -> dict[str, Any]:
    """Move ``alias`` to the best final candidate only if it beats the current holder on
    validation: the same gate every registering run goes through (``tdml.promotion``)."""
    p = spec.promotion
    key = f"best_val_{p.metric}"
    missing = [f["number"] for f in finals if key not in f["metrics"]]
    if missing:
        raise ConfigError(f"promotion.metric {p.metric!r}: the final runs logged no {key}; "
                          f"use a validation metric of the task (e.g. mse, mae)")
    cand = finals[0]
    for f in finals[1:]:
        cand = f if better(f["metrics"][key], cand["metrics"][key], p.mode) else cand
    d = gate(cand["registered_name"], cand["version"], cand["metrics"][key], key, p.mode, p.alias)
    return {**dataclasses.asdict(d), "candidate_trial": cand["number"]}
