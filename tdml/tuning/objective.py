"""The Optuna objective: one child MLflow run per trial, the kind's run inside it (or, with
the spec's ``seeds``, one grandchild run per seed and their mean), the monitor metric reported
to the pruner every epoch, the objective values logged by name."""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from tdml import runstate, tracking
from tdml.runs.common import RunSummary
from tdml.config import set_dotted
from tdml.errors import ConfigError, Stopped
from tdml.studies import StudySpec
from tdml.tuning.kinds import StudyKind
from tdml.tuning.storage import _experimental_ok

log = logging.getLogger(__name__)


class PruningReporter:
    """Epoch callback: report the monitor metric; raise TrialPruned when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str | None):
        self.trial, self.metric = trial, metric

    def __call__(self, epoch, train_terms, val_metrics, lr):
        if self.metric is None:
            return
        value = val_metrics[self.metric]
        with runstate.shielded():
            self.trial.report(value, epoch)
            prune = self.trial.should_prune()
        if prune:
            raise optuna.TrialPruned(f"epoch {epoch + 1}: val_{self.metric}={value:.5g}")


def make_objective(spec: StudySpec, kind: StudyKind, parent_run_id: str, store_dir: Path,
                   shared_parent: bool = False) -> Callable:
    """``shared_parent``: the study run belongs to the process that started this worker
    (``n_jobs``), so a stale trial of this worker must not end it (``RetryStaleTrial``)."""
    monitor = kind.monitor() if not spec.multi else None  # Optuna prunes single-objective only
    store = optuna.artifacts.FileSystemArtifactStore(str(store_dir))

    def objective(trial: optuna.Trial):
        try:
            return one_trial(trial)
        except BaseException:
            if runstate.stop_received():  # this worker stops: the trial (FAIL) is queued again for any worker, now
                _requeue(trial)
            raise

    def one_trial(trial: optuna.Trial):
        overrides = kind.search_space(trial)
        tags = {"tdml.study": spec.name, "tdml.trial_number": trial.number,
                "tdml.retry_of": _retried_from(trial)}
        with tracking.start_run("", f"trial {trial.number} · {spec.name}", "trial", tags, parent_run_id=parent_run_id,
                                stopped_on=(optuna.TrialPruned,)) as run:
            with runstate.shielded():
                trial.set_user_attr("mlflow_run_id", run.info.run_id)
                trial.set_user_attr("mlflow_run_url", tracking.run_url(run.info.run_id, run.info.experiment_id))
                trial.set_user_attr("mlflow_parent_run_id", parent_run_id)
                if shared_parent:
                    trial.set_user_attr("mlflow_parent_shared", True)
            if spec.seeds:
                values, diagnosed = _over_seeds(trial, overrides, run.info.run_id)
            else:
                summary = kind.run(overrides, [PruningReporter(trial, monitor)], final=False)
                values, diagnosed = [objective_value(summary, o.metric) for o in spec.objectives], run.info.run_id
            # the trial's value(s) under their own names: a per-epoch metric such as val_mse
            # shows its last epoch in MLflow's run view, not the best checkpoint's score
            tracking.log_metrics({f"objective_{o.metric}": v for o, v in zip(spec.objectives, values)})
        _upload_diagnostics(trial, diagnosed, store)
        return values

    def _over_seeds(trial: optuna.Trial, overrides: dict, trial_run_id: str) -> tuple[list[float], str]:
        """One child run per seed; the values are the means over seeds (their spread is logged).
        The pruner follows the first seed's curve."""
        per_seed, first, best_val = [], None, []
        for i, seed in enumerate(spec.seeds):
            seeded = copy.deepcopy(overrides)
            set_dotted(seeded, kind.seed_path, seed)
            with tracking.start_run("", f"trial {trial.number} · seed {seed}", "trial-seed",
                                    {"tdml.study": spec.name, "tdml.trial_number": trial.number, "tdml.seed": seed},
                                    parent_run_id=trial_run_id, stopped_on=(optuna.TrialPruned,)) as child:
                summary = kind.run(seeded, [PruningReporter(trial, monitor)] if i == 0 else [], final=False)
            first = first or child.info.run_id
            per_seed.append([objective_value(summary, o.metric) for o in spec.objectives])
            best_val.append({k: v for k, v in summary.metrics.items() if k.startswith("best_val_")})
        columns = np.asarray(per_seed, dtype=float).T  # [objective, seed]
        tracking.log_metrics({f"objective_{o.metric}_std": float(c.std(ddof=1)) if len(c) > 1 else 0.0
                              for o, c in zip(spec.objectives, columns)})
        # the seeds' mean validation metrics on the trial run too, as a one-seed trial has them:
        # what breaks ties between trials whose objective saturates (AUC-PRC 1.0 on small sets)
        tracking.log_metrics({k: float(np.mean([b[k] for b in best_val]))
                              for k in set.intersection(*(set(b) for b in best_val))})
        with runstate.shielded():
            trial.set_user_attr("seed_values", {str(s): v for s, v in zip(spec.seeds, per_seed)})
        return [float(c.mean()) for c in columns], first

    return objective


def _requeue(trial: optuna.Trial) -> None:
    """Queue a stopped trial's parameters again. Whatever the stop interrupted (a store write, a
    library that turned the interruption into its own error), the retry is written; a failure to
    write it is logged, not raised over the stop."""
    try:
        with runstate.shielded():
            trial.study.enqueue_trial(trial.params, user_attrs={"tdml.retry_of_stopped": trial.number},
                                      skip_if_exists=False)
    except Stopped:
        pass  # the stop being handled, raised again as the write returned: the retry is written
    except Exception as e:  # noqa: BLE001 - the worker is stopping either way; say what was not queued
        log.warning("could not queue stopped trial %d again (params %s): %s", trial.number, trial.params, e)


def objective_value(summary: RunSummary, metric: str) -> float:
    """An objective's value from a run summary (its metrics, plus ``n_params``)."""
    values = {"n_params": float(summary.n_params), **summary.metrics}
    if metric not in values:
        raise ConfigError(f"objective metric {metric!r} was not produced by the run; it logged: "
                          f"{', '.join(sorted(values))}")
    return float(values[metric])


def _retried_from(trial: optuna.Trial) -> str:
    """The number of the stale trial this one retries ('' if none)."""
    frozen = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
              if t.number == trial.number]
    with _experimental_ok():
        n = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen[0]) if frozen else None
    return "" if n is None else str(n)


def _upload_diagnostics(trial, run_id: str, store) -> None:
    """The child run's diagnostics/ tables (CSV, and PNG if any) as Optuna artifacts of the trial,
    which optuna-dashboard previews. The HTML report (plotly.js embedded, ~5 MB) stays in MLflow."""
    mimes = {".csv": "text/csv", ".png": "image/png"}
    with tempfile.TemporaryDirectory() as tmp:
        local = tracking.download_run_artifacts(run_id, "diagnostics", tmp, required=False)
        for f in sorted(local.iterdir()) if local else []:
            if f.suffix in mimes:
                optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(f), study_or_trial=trial,
                                                 mimetype=mimes[f.suffix])
