"""Shared pieces of the tuning tests: a module-scoped MLflow store with a tiny teacher,
tiny study specs, and run lookups. Everything is real (SQLite / PostgreSQL, MLflow, Optuna)."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from tdml.cli import main

from conftest import tiny_teacher_args, use_store

TEACHER = "synthetic-itransformer-L48-H12"
TEACHER_URI = f"models:/{TEACHER}@champion"
STUDENT = f"{TEACHER}-student-mlp"
PG_URL = os.environ.get("TDML_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def tiny_spec(name: str | None = None, **extra) -> dict:
    """A seconds-per-trial TimeDistill study on the tiny synthetic teacher."""
    spec = {
        "name": name or f"t-{uuid.uuid4().hex[:8]}",
        "teacher": TEACHER_URI,
        "base": {"student": "mlp", "student_params": {"d_model": 16},
                 "train": {"epochs": 2, "max_batches": 4, "progress": False, "patience": 5},
                 "tracking": {"latency_repeats": 1}},
        "search_space": {"loss": {"alpha": {"type": "float", "low": 0.1, "high": 4.0, "log": True},
                                  "kl_mode": {"type": "categorical", "choices": ["reference", "full"]}},
                         "train": {"lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}},
        "sampler": {"name": "random", "seed": 1},
        "pruner": {"name": "none"},
        "n_trials": 3,
        "storage": {"heartbeat_interval": 1, "grace_period": 3},
    }
    for k, v in extra.items():
        spec[k] = {**spec[k], **v} if isinstance(v, dict) and isinstance(spec.get(k), dict) else v
    return spec


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


_SHARED: dict[str, Path] = {}


def _shared_root() -> Path:
    """One store with the tiny teacher per test process (teacher trained once, ~3 s)."""
    if "root" not in _SHARED:
        root = Path(tempfile.mkdtemp(prefix="tdml-tuning-store-"))
        atexit.register(shutil.rmtree, root, True)
        with _use_store(root):
            assert main(tiny_teacher_args()) == 0
        _SHARED["root"] = root
    return _SHARED["root"]


_use_store = use_store

@contextmanager
def teacher_store(cwd: Path):
    """MLFLOW_TRACKING_URI = the shared SQLite store holding the tiny teacher; cwd = ``cwd``.
    Tests sharing it use distinct study names; only the e2e test registers students."""
    with _use_store(_shared_root(), cwd) as client:
        yield client


def worker_env(cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    return {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{_shared_root() / 'mlflow.db'}",
            "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}


def runs(client: MlflowClient, role: str | None = None, study: str | None = None):
    found = client.search_runs([e.experiment_id for e in client.search_experiments()],
                               order_by=["attributes.start_time ASC"], max_results=1000)
    return [r for r in found if (role is None or r.data.tags.get("tdml.role") == role)
            and (study is None or r.data.tags.get("tdml.study") == study)]


def pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001 - any failure means: skip the PostgreSQL tests
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
