"""Bench teachers that survive a fresh checkout.

The benches commit their records (and some their MLflow store) but not the MLflow artifact
folders, so a new checkout cannot load a recorded teacher and used to train it again -- and
CPU training does not reproduce bit for bit, so a long benchmark resumed across sessions mixed
two teachers (or threw away the runs of the first). ``save`` writes a registered teacher's
weights (the tdml bundle: safetensors + config, ~1-5 MB) and its run's params, metrics and
tags under a committed folder; ``restore`` logs them as a new run of the current store and
registers the model again, tagged with the original run id (``ORIGIN_TAG``), so the bench can
go on with the *same* weights.

    vault = out / "teachers" / dataset
    teacher_vault.save("models:/ucr-trace-lstm_teacher/1", vault)
    uri = teacher_vault.restore(vault, experiment="bench")   # in a fresh store
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from tdml import tracking
from tdml.mlflow_models import load_model, log_model, resolve_version
from tdml.serving import load_bundle, save_bundle

ORIGIN_TAG = "tdml.vault_origin_run_id"  # the run id the teacher was first trained in
RUN_FILE, BUNDLE = "run.json", "bundle"


def origin_run_id(uri: str) -> str:
    """The run id a teacher was trained in: its own, or the one it was restored from."""
    run = MlflowClient().get_run(resolve_version(uri).run_id)
    return run.data.tags.get(ORIGIN_TAG, run.info.run_id)


def holds(vault: Path, run_id: str) -> bool:
    """Whether ``vault`` holds the teacher first trained in run ``run_id``."""
    path = vault / RUN_FILE
    return path.is_file() and json.loads(path.read_text())["origin_run_id"] == run_id


def save(uri: str, vault: Path) -> Path:
    """Write the teacher behind ``uri`` (weights, config, its run's record) to ``vault``."""
    model, meta, mv = load_model(uri)
    run = MlflowClient().get_run(mv.run_id)
    vault.mkdir(parents=True, exist_ok=True)
    save_bundle(model, meta, vault / BUNDLE)
    record = {"name": mv.name, "origin_run_id": run.data.tags.get(ORIGIN_TAG, run.info.run_id),
              "params": run.data.params, "metrics": run.data.metrics,
              "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}}
    (vault / RUN_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return vault


def restore(vault: Path, experiment: str) -> str:
    """Register the vault's teacher in the current store; its new ``models:/name/version`` URI."""
    record = json.loads((vault / RUN_FILE).read_text())
    model, meta = load_bundle(vault / BUNDLE)
    tags = {**record["tags"], ORIGIN_TAG: record["origin_run_id"]}
    with tracking.start_run(experiment, f"{record['name']} (restored)", tags.get("tdml.role", "teacher"), tags=tags):
        mlflow.log_params(record["params"])
        mlflow.log_metrics(record["metrics"])
        mv = log_model(model, meta, record["name"])
    return f"models:/{mv.name}/{mv.version}"
