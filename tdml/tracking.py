"""Every MLflow call tdml makes lives here.

Runs fail loudly and visibly: an exception inside ``start_run`` marks the run FAILED,
records the reason (tag ``tdml.error``, the run description, ``error.txt``) and re-raises.
Models are logged as pyfunc with ``loader_module=tdml.serving`` over a safetensors +
JSON bundle, so loading them never unpickles code. Time spent here is accumulated for the
process (``tdml.runstate``; one training run per process, parallel trials are worker
processes), so a run can report the share of its wall time that went to tracking.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tdml import experiments
from tdml import runstate
from tdml.numerics import NUMERICS_TAG, numerics
from tdml.config import flatten
from tdml.errors import RegistryError, Stopped, TdmlError
# the model registry's functions are part of this module's API (tracking.load_model, ...)
from tdml.mlflow_models import (active_run_id, current_alias_version, load_model, log_model,  # noqa: F401
                                model_version, parse_model_uri, resolve_version, set_alias,
                                set_version_tags)
from tdml.runstate import timed
from tdml.experiments import run_url  # noqa: F401 (tdml.tuning and tests call tracking.run_url)

log = logging.getLogger(__name__)

ROLE_TAG = "tdml.role"  # 'teacher' | 'student' | 'pipeline' | 'study' | 'trial'
ERROR_TAG = "tdml.error"


def tracking_seconds() -> float:
    """Seconds this process has spent in MLflow calls so far (a run reads the difference)."""
    return runstate.mlflow_seconds()


# ----------------------------------------------------------------------------- runs
@contextmanager
def start_run(experiment: str, run_name: str | None, role: str, tags: dict[str, str] | None = None,
              nested: bool = False, parent_run_id: str | None = None,
              stopped_on: tuple[type[BaseException], ...] = ()) -> Iterator[mlflow.ActiveRun]:
    """Start (or, under ``mlflow run``, resume) a run; mark it FAILED with the reason on error.

    ``parent_run_id`` nests the run under that run explicitly; needed in a study's worker
    processes, where the parent run is not active. An exception of a type in
    ``stopped_on`` (e.g. ``optuna.TrialPruned``) ends the run KILLED with ``tdml.pruned=true``
    instead of FAILED, and is re-raised.
    """
    t = time.perf_counter()
    kwargs: dict[str, Any] = {}
    launcher = None
    tags = {ROLE_TAG: role, NUMERICS_TAG: numerics(), **{k: str(v) for k, v in (tags or {}).items()}}
    try:
        if parent_run_id:
            kwargs = {"parent_run_id": parent_run_id,
                      "experiment_id": MlflowClient().get_run(parent_run_id).info.experiment_id}
        elif not nested and mlflow.active_run() is None:  # the named experiment (also under `mlflow run`)
            kwargs, launcher = experiments.top_level(experiment)
            tags = {**kwargs.pop("tags", {}), **tags}
        run = mlflow.start_run(run_name=run_name, nested=nested or bool(parent_run_id) or mlflow.active_run() is not None,
                               tags=tags, **kwargs)
        if launcher:
            experiments.label_launcher(launcher, run)
    except (MlflowException, OSError) as e:  # nothing was created: say what to fix
        raise TrackingUnavailable(_unavailable(e)) from None
    runstate.add_mlflow_seconds(time.perf_counter() - t)
    try:
        yield run
    except BaseException as e:
        if stopped_on and isinstance(e, stopped_on):
            _mark_stopped(run.info.run_id, f"{type(e).__name__}: {e}")
            raise
        status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        if isinstance(e, KeyboardInterrupt):  # an interruption, not a bug: no traceback
            reason = str(e) if isinstance(e, Stopped) else "stopped by SIGINT (Ctrl-C)"
        else:
            reason = str(e) if isinstance(e, TdmlError) else "".join(traceback.format_exception(e))
        _mark_failed(run.info.run_id, f"{type(e).__name__}: {reason}", status)
        raise
    else:
        timed(mlflow.end_run)("FINISHED")


class TrackingUnavailable(TdmlError):
    """The tracking store cannot be used (unreachable server, refused credentials, bad URI)."""


def _unavailable(e: BaseException) -> str:
    uri = mlflow.get_tracking_uri()
    text = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    if "401" in text or "403" in text or "Unauthorized" in text or "Permission" in text:
        hint = "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD and the user's permissions"
    else:
        hint = "check MLFLOW_TRACKING_URI and that the tracking server is running and reachable"
    return f"cannot use the MLflow tracking store at {uri}: {text}; {hint}"


def _terminate(run_id: str, status: str, note: str, tags: dict[str, str], error_text: str | None = None) -> None:
    """End a run with ``status``; the note (run description) and tags say why."""
    client = MlflowClient()
    try:
        for k, v in {**tags, "mlflow.note.content": note[:5000]}.items():
            client.set_tag(run_id, k, v)
        if error_text is not None:
            client.log_text(run_id, error_text, "error.txt")
    finally:
        if mlflow.active_run() and mlflow.active_run().info.run_id == run_id:
            mlflow.end_run(status)
        else:
            client.set_terminated(run_id, status)


@timed
def _mark_failed(run_id: str, reason: str, status: str) -> None:
    _terminate(run_id, status, f"**{status}**: {reason}", {ERROR_TAG: reason[:5000]}, reason)


@timed
def _mark_stopped(run_id: str, reason: str) -> None:
    """End a run stopped on purpose (a pruned trial): KILLED, tagged, no error."""
    _terminate(run_id, "KILLED", f"**KILLED** (stopped early): {reason[:2000]}", {"tdml.pruned": "true"})


@timed
def mark_run_killed(run_id: str, reason: str) -> None:
    """Terminate a run left RUNNING by a worker that died (KILLED, reason in ``tdml.error``)."""
    if MlflowClient().get_run(run_id).info.status == "RUNNING":
        _terminate(run_id, "KILLED", f"**KILLED**: {reason}", {ERROR_TAG: reason[:5000]})


@timed
def log_params(params: dict[str, Any]) -> None:
    flat = flatten(params)
    mlflow.log_params({k: ("" if v is None else v) for k, v in flat.items()})


@timed
def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


@timed
def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


@timed
def log_artifacts(directory: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifacts(str(directory), artifact_path)


@timed
def log_inputs(data, splits: tuple[str, ...], source: str) -> None:
    """The splits a run uses as MLflow datasets (name, source, digest of the rows): the UI's
    Dataset column."""
    contexts = {"train": "training", "val": "validation", "test": "testing"}
    for split in splits:
        with warnings.catch_warnings():  # MLflow registers two local-source classes; both fit
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            rows, columns = data.split_array(split), getattr(data, "columns", None)
            if columns and rows.ndim == 2 and rows.shape[1] == len(columns):  # the schema names the columns
                ds = mlflow.data.from_pandas(pd.DataFrame(rows, columns=columns), source=source, name=f"{data.name}-{split}")
            else:
                ds = mlflow.data.from_numpy(rows, source=source, name=f"{data.name}-{split}")
        # Two workers' runs logging the same new dataset at once race on the store's unique
        # key: the loser retries once, and then finds the dataset there.
        try:
            mlflow.log_input(ds, context=contexts.get(split, split))
        except MlflowException:
            time.sleep(0.2)
            mlflow.log_input(ds, context=contexts.get(split, split))


@timed
def log_dict(data: dict, file_name: str) -> None:
    mlflow.log_dict(data, file_name)


@timed
def log_text(text: str, file_name: str) -> None:
    mlflow.log_text(text, file_name)


@timed
def name_run(name: str, generic: tuple[str, ...]) -> None:
    """Name the active run once its config is resolved, unless its caller named it itself."""
    if mlflow.active_run().info.run_name in generic:
        mlflow.set_tag("mlflow.runName", name)


    # tdml itself is not on PyPI: serve with `--env-manager local` from an environment that has it.


# ----------------------------------------------------------------------------- studies (tdml.tuning)
@timed
def run_metrics(run_id: str) -> dict[str, float]:
    return dict(MlflowClient().get_run(run_id).data.metrics)


@timed
def set_run_tags(run_id: str, tags: dict[str, Any]) -> None:
    """Tags on a run that need not be the active one (e.g. a trial's run from the study's)."""
    client = MlflowClient()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v))


@timed
def log_plotly_html(fig, file_name: str, artifact_path: str = "plots") -> None:
    """A plotly figure as a self-contained HTML artifact (plotly.js embedded: renders offline)."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / file_name
        fig.write_html(str(p), include_plotlyjs=True, full_html=True)
        mlflow.log_artifact(str(p), artifact_path)


# ----------------------------------------------------------------------------- reports (tdml.comparison)
@timed
def experiment_names() -> list[str]:
    return sorted(e.name for e in MlflowClient().search_experiments())


@timed
def active_experiment_name() -> str:
    return MlflowClient().get_experiment(mlflow.active_run().info.experiment_id).name


@timed
def experiment_runs(experiment: str) -> list:
    exp = MlflowClient().get_experiment_by_name(experiment)
    return [] if exp is None else MlflowClient().search_runs([exp.experiment_id], max_results=5000)


# ----------------------------------------------------------------------------- condensation (tdml.condensation)
@timed
def find_finished_runs(tags: dict[str, str]) -> list[str]:
    """Ids of FINISHED runs (any experiment, newest first) carrying all of ``tags``."""
    client = MlflowClient()
    exps = [e.experiment_id for e in client.search_experiments()]
    if not exps:
        return []
    flt = " and ".join([f"tags.`{k}` = '{v}'" for k, v in tags.items()] + ["attributes.status = 'FINISHED'"])
    runs = client.search_runs(exps, flt, order_by=["attributes.start_time DESC"], max_results=20)
    return [r.info.run_id for r in runs]


@timed
def run_info(run_id: str) -> tuple[str, dict[str, str]]:
    """(status, tags) of a run; RegistryError naming the fix when it does not exist."""
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        raise RegistryError(f"run {run_id!r} does not exist in {mlflow.get_tracking_uri()}; "
                            f"check the run id or MLFLOW_TRACKING_URI") from None
    return run.info.status, dict(run.data.tags)


@timed
def download_run_artifacts(run_id: str, artifact_path: str, dst: str | Path | None = None,
                           required: bool = True) -> Path | None:
    """A run's artifact folder as a local path (under ``dst``, else MLflow's cache); if it is
    missing: RegistryError when ``required``, else None."""
    if not MlflowClient().list_artifacts(run_id, artifact_path):
        if required:
            raise RegistryError(f"run {run_id} has no artifact folder {artifact_path!r}")
        return None
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                    dst_path=None if dst is None else str(dst)))


def tracking_uri() -> str:
    """The tracking URI with a relative SQLite path made absolute (to hand to subprocesses)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri
