"""Shared fixtures: an isolated MLflow store per test, the shared data folder, tiny configs."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import torch

# Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP
# threads waiting on each other slow every op by 10x or more.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


@contextmanager
def use_store(root: Path, cwd: Path | None = None, **env: str):
    """Make a SQLite store under ``root`` the tracking URI (and ``cwd`` the working folder,
    so ./mlruns artifacts land there) for a module-scoped fixture; restores everything after.

    MLFLOW_EXPERIMENT_ID is cleared and restored too: mlflow.set_experiment() exports it, and
    a leaked id points later tests and their `mlflow run` subprocesses at another store.
    """
    uri = f"sqlite:///{root / 'mlflow.db'}"
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", *env)
    old_cwd, old_env = os.getcwd(), {k: os.environ.get(k) for k in keys}
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    os.environ.update(MLFLOW_TRACKING_URI=uri, **env)
    os.chdir(cwd or root)
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow.MlflowClient(uri)
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        mlflow.set_tracking_uri(None)


def runs_of(client, role=None, status=None):
    """Every run in the store, newest first, filtered by tdml.role tag and status."""
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time DESC"])
    return [r for r in runs if (role is None or r.data.tags.get("tdml.role") == role)
            and (status is None or r.info.status == status)]


@pytest.fixture
def shared_data(monkeypatch) -> Path:
    """``../shared/data`` as TDML_DATA_DIR; skips the test when the folder is absent."""
    if not (SHARED_DATA / "ETTh1.csv").is_file():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    monkeypatch.setenv("TDML_DATA_DIR", str(SHARED_DATA))
    return SHARED_DATA


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A fresh SQLite tracking store + artifact root under tmp_path, as the active URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # set_experiment() exports it
    # ...and remembers it in the fluent API: an id from another test's store is not in this one
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.setenv("TDML_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # default artifact root ./mlruns lands in tmp_path
    mlflow.set_tracking_uri(uri)
    while mlflow.active_run():
        mlflow.end_run()
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def tiny_teacher_args(**extra) -> list[str]:
    """CLI args for a seconds-long teacher run on the synthetic default."""
    args = ["train-teacher", "--dataset", "synthetic", "--model", "itransformer", "--seq-len", "48",
            "--pred-len", "12", "--epochs", "1", "--no-progress", "--set", "train.max_batches=8",
            "--set", "tracking.latency_repeats=2"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def tiny_distill_args(teacher: str, **extra) -> list[str]:
    args = ["distill", "--teacher", teacher, "--epochs", "1", "--no-progress", "--set",
            "train.max_batches=8", "--set", "tracking.latency_repeats=2", "--set", "student_params.d_model=32"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


os.environ.setdefault("TQDM_DISABLE", "1")
# teacher-output cache entries of this test session stay out of ~/.cache
os.environ.setdefault("TDML_CACHE_DIR", tempfile.mkdtemp(prefix="tdml-test-cache-"))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, what: str, tries: int = 240) -> None:
    """Poll ``url`` until it answers; fail the test naming ``what`` if it never does."""
    import time
    import urllib.request

    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{what} did not start ({url})")
