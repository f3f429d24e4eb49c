"""Which experiment a top-level run is logged into (used by ``tdml.tracking.start_run``).

Every run lands in a named experiment (``tdml`` unless the config says otherwise) tagged
``mlflow.experimentKind = custom_model_development``, so MLflow 3's UI opens it on training runs.

``mlflow run`` creates its run before tdml starts and hands it over in ``MLFLOW_RUN_ID``; without
``--experiment-name`` / ``--experiment-id`` (or ``MLFLOW_EXPERIMENT_NAME`` / ``_ID``) that run is in
the ``Default`` experiment, and an MLproject cannot choose another. Then tdml logs the work as a new
run in the named experiment, with the project's source tags, and turns the launcher's run into a
pointer: tag ``tdml.role = launcher``, ``tdml.logged_in`` = the real run's id, a description with
its URL. The pointer is kept, not deleted: ``mlflow run`` ends it itself (FINISHED or FAILED, from
the exit status) and fails with "must be in the 'active' state" if it was deleted. A launcher run
in an experiment the user chose is used as it is.
"""

from __future__ import annotations

import logging
import os

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on training runs
DEFAULT_EXPERIMENT_ID = "0"
LAUNCHER_ROLE = "launcher"
_PROJECT_TAGS = ("mlflow.source.", "mlflow.project.", "mlflow.gitRepoURL", "mlflow.user")


def declare_kind(exp) -> None:
    """Tag the experiment as model training (MLflow 3 otherwise opens its GenAI overview)."""
    if (exp.tags or {}).get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
        try:
            for k, v in EXPERIMENT_KIND.items():
                MlflowClient().set_experiment_tag(exp.experiment_id, k, v)
        except MlflowException as e:  # a UI hint: never worth failing a run (e.g. a locked SQLite file)
            log.warning("could not tag experiment %s: %s", exp.experiment_id, e)


def run_url(run_id: str, experiment_id: str) -> str:
    """Where a run opens in the MLflow UI (the tracking server, else `mlflow ui`'s default)."""
    uri = mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def set_active(experiment: str):
    """``mlflow.set_experiment(experiment)``, and active for certain: when two workers create the
    experiment at once (a fresh server), MLflow's loser gets RESOURCE_ALREADY_EXISTS and returns
    the experiment *without* making it active, so its runs would land in Default."""
    exp = mlflow.set_experiment(experiment)
    return mlflow.set_experiment(experiment_id=exp.experiment_id)


def top_level(experiment: str) -> tuple[dict, str | None]:
    """``(mlflow.start_run kwargs, launcher run id to label once the run exists)`` for a
    top-level run meant for ``experiment``."""
    launched = os.environ.get("MLFLOW_RUN_ID")
    if not launched:
        declare_kind(set_active(experiment))
        return {}, None
    client = MlflowClient()
    stub = client.get_run(launched)
    if not _redirect(stub, experiment):  # nested runs follow it into its experiment
        declare_kind(mlflow.set_experiment(experiment_id=stub.info.experiment_id))
        return {}, None  # mlflow.start_run resumes MLFLOW_RUN_ID
    del os.environ["MLFLOW_RUN_ID"]  # else nested runs would resume the launcher's run too
    declare_kind(set_active(experiment))
    tags = {k: v for k, v in stub.data.tags.items() if k.startswith(_PROJECT_TAGS)}
    return {"tags": {**tags, "tdml.launcher_run_id": launched}}, launched


def _redirect(stub, experiment: str) -> bool:
    """A project run (``mlflow run``) in the Default experiment nobody chose, while the work is
    meant for another experiment."""
    return (stub.data.tags.get("mlflow.source.type") == "PROJECT"
            and stub.info.experiment_id == DEFAULT_EXPERIMENT_ID
            and not os.environ.get("MLFLOW_EXPERIMENT_NAME")  # set by the user, `mlflow run` reads it
            and experiment not in ("", MlflowClient().get_experiment(DEFAULT_EXPERIMENT_ID).name))


def label_launcher(launcher_id: str, run) -> None:
    """The launcher's run says where the work went (it stays RUNNING: `mlflow run` ends it)."""
    exp = MlflowClient().get_experiment(run.info.experiment_id).name
    url = run_url(run.info.run_id, run.info.experiment_id)
    entry = run.data.tags.get("mlflow.project.entryPoint", "")
    note = (f"**Pointer.** `mlflow run` started this run in the Default experiment; tdml logged the work "
            f"in experiment **{exp}** as run [{run.info.run_id}]({url}).\n\nPass `--experiment-name <name>` "
            f"to `mlflow run` to log into that experiment directly (this run is then the work's run).")
    tags = {"tdml.role": LAUNCHER_ROLE, "tdml.logged_in": run.info.run_id, "tdml.logged_in_experiment": exp,
            "mlflow.runName": f"→ {exp} · {entry}".rstrip(" ·"), "mlflow.note.content": note}
    client = MlflowClient()
    try:
        for k, v in tags.items():
            client.set_tag(launcher_id, k, v)
    except MlflowException as e:  # a signpost: never worth failing the work's run
        log.warning("could not label mlflow run's run %s: %s", launcher_id, e)
    log.info("mlflow run's run %s is in the Default experiment: logging into experiment %r as run %s (%s)",
             launcher_id, exp, run.info.run_id, url)
