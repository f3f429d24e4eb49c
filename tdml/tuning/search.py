"""``tune``: one study run (MLflow parent), the search, its summary and plots, then the final
runs and the promotion gate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from tdml import tracking
from tdml.config import to_dict
from tdml.errors import ConfigError, RegistryError
from tdml.studies import StudySpec
from tdml.tuning.finals import final_run, promote
from tdml.tuning.kinds import KINDS
from tdml.tuning.objective import make_objective
from tdml.tuning.storage import artifact_dir, create_or_load_study, redact, storage_url
from tdml.tuning.workers import run_workers

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    study_name: str
    parent_run_id: str
    storage: str
    n_trials: dict[str, int]
    best: list[dict[str, Any]]  # number, params, values, mlflow_run_id
    finals: list[dict[str, Any]] = field(default_factory=list)
    promotion: dict[str, Any] | None = None
    seconds: float = 0.0  # the whole call
    search_seconds: float = 0.0  # study.optimize only (no plots, test run or promotion)


def tune(spec: StudySpec, n_trials: int | None = None, storage: str | None = None,
         n_jobs: int = 1) -> TuneResult:
    """Run (or resume) ``spec``'s study: search, then test the best, then the promotion gate."""
    kind = KINDS.get(spec.kind)(spec)
    kind.validate()
    if spec.seeds and kind.seed_path in dict(spec.search_space.items()):
        raise ConfigError(f"study {spec.name!r}: `seeds` sets {kind.seed_path} for each run of a trial; "
                          f"remove it from search_space (or drop `seeds`)")
    url = storage_url(spec, storage)
    if n_jobs > 1 and ":memory:" in url:
        raise ConfigError(f"n_jobs={n_jobs} runs worker processes, which cannot share an in-memory storage; "
                          f"give a file or server storage (e.g. sqlite:///optuna.db)")
    study = create_or_load_study(spec, url)  # once, before any worker process starts
    store_dir = artifact_dir(spec, url)
    store_dir.mkdir(parents=True, exist_ok=True)
    n = n_trials or spec.n_trials
    t0 = time.perf_counter()
    tags = {"tdml.study": spec.name, "tdml.optuna_storage": redact(url), "tdml.optuna_study_id": str(study._study_id),
            "mlflow.note.content": f"Optuna study **{spec.name}** ({spec.kind}) in `{redact(url)}`; one child run "
                                   f"per trial. Watch it with `optuna-dashboard '{redact(url)}' --artifact-dir "
                                   f"{store_dir}`."}
    with tracking.start_run(spec.experiment, f"study {spec.name}", "study", tags) as parent:
        tracking.log_params({"study": _spec_params(spec), "tune": {"n_trials": n, "n_jobs": n_jobs}})
        kind.prepare()
        t_search = time.perf_counter()
        if n_jobs > 1:
            run_workers(spec, url, parent.info.run_id, store_dir, n, n_jobs)
        else:
            objective = make_objective(spec, kind, parent.info.run_id, store_dir)
            study.optimize(objective, n_trials=n, timeout=spec.timeout_s or None, catch=(FloatingPointError,))
        search_seconds = time.perf_counter() - t_search
        result = _summarize(spec, study, parent.info.run_id, url)
        result.search_seconds = search_seconds
        result.seconds = time.perf_counter() - t0
        tracking.log_metrics({"tune_seconds": result.seconds, "search_seconds": search_seconds,
                              "trials_per_minute": 60 * n / max(search_seconds, 1e-9)})
        if result.best and spec.finalize:
            result.finals = [final_run(spec, kind, study, parent.info.run_id, b) for b in result.best[:spec.n_final]]
            if spec.promotion.enabled:
                result.promotion = promote(spec, result.finals)
            _log_report(spec)
    return result


def _log_report(spec: StudySpec) -> None:
    """The comparison report of the study's teacher family (the teacher, the final runs and any
    other tested student of it in the experiment), as artifacts of the study run."""
    from tdml.comparison import log_report  # plotly only when a report is written

    try:
        log_report(spec.experiment, tracking.parse_model_uri(spec.teacher)[0])
    except (ConfigError, RegistryError) as e:
        log.warning("no comparison report for study %s: %s", spec.name, e)


def _spec_params(spec: StudySpec) -> dict:
    d = to_dict(spec)
    d.pop("search_space")
    d["search_space"] = {path: str(to_dict(dist)) for path, dist in spec.search_space.items()}
    return d


def _summarize(spec: StudySpec, study: optuna.Study, parent_run_id: str, url: str) -> TuneResult:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    tracking.log_metrics({f"trials_{k}": v for k, v in counts.items()})
    best = sorted(study.best_trials, key=lambda t: t.values[0] * (1 if spec.objectives[0].mode == "min" else -1)) \
        if counts["complete"] else []
    rows = [{"number": t.number, "params": t.params, "values": dict(zip([o.metric for o in spec.objectives], t.values)),
             "mlflow_run_id": t.user_attrs.get("mlflow_run_id")} for t in best]
    if rows:
        top = rows[0]
        tracking.log_params({"best": top["params"]})
        tracking.log_metrics({f"best_{k}": v for k, v in top["values"].items()} | {"best_trial": top["number"]})
        tracking.set_tags({"tdml.best_trial": top["number"], "tdml.best_run_id": top["mlflow_run_id"]})
        tracking.log_dict({"best_trials": rows}, "best_trials.json")
    if spec.plots:
        _log_plots(spec, study)
    return TuneResult(spec.name, parent_run_id, redact(url), counts, rows)


def _log_plots(spec: StudySpec, study: optuna.Study) -> None:
    import optuna.visualization as vis

    first = spec.objectives[0].metric
    target = dict(target=lambda t: t.values[0], target_name=first) if spec.multi else {}
    plots = {"history": lambda: vis.plot_optimization_history(study, **target),
             "param_importances": lambda: vis.plot_param_importances(study, **target),
             "parallel_coordinate": lambda: vis.plot_parallel_coordinate(study, **target)}
    if spec.multi:
        plots["pareto_front"] = lambda: vis.plot_pareto_front(
            study, target_names=[o.metric for o in spec.objectives])
    skipped = []
    for name, make in plots.items():
        try:
            tracking.log_plotly_html(make(), f"{name}.html")
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # e.g. importances with < 2 trials
            skipped.append(f"{name}: {type(e).__name__}: {e}")
            log.warning("plot %s skipped: %s", name, e)
    if skipped:
        tracking.log_text("\n".join(skipped) + "\n", "plots/skipped.txt")
