"""Every entry point against a live `mlflow server` (REST store, proxied artifacts), not only
SQLite files: the main job, distill, tune (with its final run, promotion and report) and
condense. The REST API refuses values of the wrong type that a SQLite store coerces silently."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from conftest import free_port, wait_http
from tuning_helpers import tiny_spec, write_spec


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{root / 'backend.db'}", "--artifacts-destination", (root / "artifacts").as_uri(),
                             "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # as compose runs it
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", "mlflow server")
        yield url, root
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def _tdml(server, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    url, root = server
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env.update(MLFLOW_TRACKING_URI=url, OMP_NUM_THREADS="1", TQDM_DISABLE="1", TDML_DATA_DIR=str(root / "data"))
    p = subprocess.run([sys.executable, "-m", "tdml.cli", *args], cwd=root, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


QUICK = ["--no-progress", "--set", "train.max_batches=4", "--set", "tracking.latency_repeats=2"]


def test_every_entry_point_runs_against_a_tracking_server(server, monkeypatch):
    url, root = server
    # the global URI too: MLflow 3.0's MlflowClient(url).list_artifacts resolves proxied
    # (mlflow-artifacts:) URIs against the global tracking URI, not the client's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    client = MlflowClient(url)
    _tdml(server, "main", "--seq-len", "48", "--pred-len", "12", "--epochs", "1", *QUICK)
    teacher = "synthetic-itransformer-L48-H12"
    assert client.get_model_version_by_alias(teacher, "champion")
    _tdml(server, "distill", "--teacher", f"models:/{teacher}@champion", "--epochs", "1", *QUICK,
          "--set", "student_params.d_model=16")
    spec = write_spec(root / "s.yaml", tiny_spec("server-study", plots=False, n_trials=2))
    _tdml(server, "tune", "--study", str(spec), "--storage", f"sqlite:///{root / 'optuna.db'}")
    _tdml(server, "condense", "--experiment", "server-condense", "--dataset", "synthetic", "--seq-len", "16",
          "--pred-len", "8", "--n-windows", "4", "--method", "mtt+ddtime", "--iterations", "2",
          "--set", "experts.n_experts=2", "--set", "experts.epochs=3", "--set", "experts.max_batches=5",
          "--set", "match.syn_steps=3", "--set", "match.max_start_epoch=2", "--set", "eval.epochs=4",
          "--set", "eval.select_epochs=2", "--set", "eval.select_every=2", "--set", "eval.seeds=[0]",
          "--set", "eval.models=[dlinear]")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=500)
    by_role: dict[str, list] = {}
    for r in runs:
        by_role.setdefault(r.data.tags.get("tdml.role"), []).append(r)
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    assert {"pipeline", "teacher", "student", "study", "trial", "final", "condense"} <= set(by_role)
    # artifacts went through the server's proxy into its store
    study = by_role["study"][0]
    assert {a.path for a in client.list_artifacts(study.info.run_id)} >= {"promotion.json", "report"}
    assert (root / "artifacts").is_dir() and any((root / "artifacts").rglob("report.csv"))
