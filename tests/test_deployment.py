"""The shared deployment. docker/compose.yaml is checked statically (and by `docker-compose
config` where installed); the same topology runs natively on loopback: `mlflow server
--app-name basic-auth` on PostgreSQL (runs, registry and users) with proxied artifacts, two
users' `tdml tune` workers on a PostgreSQL Optuna storage, checked through the REST API."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import REPO, free_port, wait_http
from tuning_helpers import pg_available, tiny_spec, write_spec

DOCKER = REPO / "docker"


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_has_the_services_and_takes_secrets_only_from_env():
    c = _compose()
    assert {"postgres", "minio", "create-bucket", "mlflow", "optuna-dashboard", "worker", "serve"} <= set(c["services"])
    text = (DOCKER / "compose.yaml").read_text()
    for key, value in re.findall(r"(\w*(?:PASSWORD|SECRET\w*))\s*:\s*(\S+)", text):
        assert value.startswith("${"), f"{key} is not taken from docker/.env: {value}"
    mlflow_env = c["services"]["mlflow"]["environment"]
    assert "mlflow" in mlflow_env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert mlflow_env["MLFLOW_DEFAULT_PERMISSION"] == "EDIT"  # several users write to shared experiments
    assert c["services"]["optuna-dashboard"]["ports"] == ["127.0.0.1:8080:8080"]  # no auth: loopback only
    assert c["services"]["worker"]["deploy"]["replicas"] == "${TDML_WORKERS:-2}"
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert len(example["MLFLOW_ADMIN_PASSWORD"]) >= 12  # MLflow 3.17 refuses shorter
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO)
    assert ignored.returncode == 0, "docker/.env must be git-ignored"


def test_compose_config_validates():
    cmd = (["docker-compose"] if shutil.which("docker-compose") else
           ["docker", "compose"] if shutil.which("docker") and subprocess.run(
               ["docker", "compose", "version"], capture_output=True).returncode == 0 else None)
    if cmd is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    p = subprocess.run([*cmd, "-f", str(DOCKER / "compose.yaml"), "--env-file", str(DOCKER / ".env.example"), "config"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


# ----------------------------------------------------------------------------- native topology
ADMIN = ("admin", "admin-password-1234")
PG = "postgresql://postgres@127.0.0.1:5432"


def _sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def _api(url: str, path: str, body: dict | None = None, auth: tuple[str, str] | None = None,
         method: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(f"{url}{path}", data=None if body is None else json.dumps(body).encode(),
                                 headers=headers, method=method or ("POST" if body is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    if not pg_available():
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432 (trust auth, database test)")
    root = tmp_path_factory.mktemp("auth")
    tag = uuid.uuid4().hex[:8]
    dbs = {k: f"tdml_test_{tag}_{k}" for k in ("mlflow", "auth", "optuna")}
    for db in dbs.values():
        _sql(f"CREATE DATABASE {db}")
    ini = root / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = EDIT\n"
                   f"database_uri = postgresql+psycopg://postgres@127.0.0.1:5432/{dbs['auth']}\n"
                   f"admin_username = {ADMIN[0]}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
           "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                             "--backend-store-uri", f"postgresql+psycopg://postgres@127.0.0.1:5432/{dbs['mlflow']}",
                             "--artifacts-destination", (root / "artifacts").as_uri(), "--serve-artifacts",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", "mlflow server --app-name basic-auth")
        for user in ("alice", "bob", "carol"):
            code, _ = _api(url, "/api/2.0/mlflow/users/create", {"username": user, "password": f"{user}-password-1"},
                           ADMIN)
            assert code == 200, (user, code)
        yield url, root, f"postgresql+psycopg://postgres@127.0.0.1:5432/{dbs['optuna']}"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        for db in dbs.values():
            _sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def _env(url: str, root: Path, user: str, password: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    return {**env, "MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password or f"{user}-password-1", "OMP_NUM_THREADS": "1",
            "TQDM_DISABLE": "1", "TDML_DATA_DIR": str(root / "data"), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


def test_two_users_workers_share_one_authenticated_server(auth_server, monkeypatch):
    url, root, optuna_url = auth_server
    teacher = ["train-teacher", "--seq-len", "48", "--pred-len", "12", "--epochs", "1", "--no-progress",
               "--set", "train.max_batches=8", "--set", "tracking.latency_repeats=2"]
    p = subprocess.run([sys.executable, "-m", "tdml.cli", *teacher], cwd=root, env=_env(url, root, "alice"),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    # a generous heartbeat grace: three servers' worth of processes share two cores here
    spec = write_spec(root / "s.yaml", tiny_spec("auth-study", plots=False, n_trials=2,
                                                storage={"heartbeat_interval": 2, "grace_period": 60}))
    # one worker finalises (test + register + promote); the others only search: concurrent
    # finalisations would race on registering the same model (docs/deployment.md)
    workers = [subprocess.Popen([sys.executable, "-m", "tdml.cli", "tune", "--study", str(spec), "--storage", optuna_url,
                                 *extra], cwd=root, env=_env(url, root, user), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
               for user, extra in (("alice", []), ("bob", ["--set", "finalize=false"]))]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[-2000:] for o in outs]

    import optuna

    study = optuna.load_study(study_name="auth-study", storage=optuna_url)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 4
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    admin = MlflowClient(url)  # artifacts through the server's proxy
    code, exps = _api(url, "/api/2.0/mlflow/experiments/search", {"max_results": 100}, ADMIN)
    exp_id = next(e["experiment_id"] for e in exps["experiments"] if e["name"] == "tdml-tuning")
    runs = {}
    for t in study.trials:
        code, got = _api(url, f"/api/2.0/mlflow/runs/get?run_id={t.user_attrs['mlflow_run_id']}", auth=ADMIN)
        assert code == 200, t.number
        runs[got["run"]["info"]["run_id"]] = got["run"]
    parents = {next(tg["value"] for tg in runs[t.user_attrs["mlflow_run_id"]]["data"]["tags"]
                    if tg["key"] == "mlflow.parentRunId") for t in study.trials}
    assert len(parents) == 2  # one study run per worker, each its own trials' parent
    assert {_api(url, f"/api/2.0/mlflow/runs/get?run_id={p}", auth=ADMIN)[1]["run"]["info"]["user_id"]
            for p in parents} == {"alice", "bob"}  # each worker logged in as its own user
    for t in study.trials:
        r = runs[t.user_attrs["mlflow_run_id"]]
        assert r["info"]["status"] == "FINISHED"
        assert any(m["key"] == "best_val_mse" for m in r["data"]["metrics"])
        assert any(a.path.endswith("top_periods.csv") for a in admin.list_artifacts(r["info"]["run_id"], "diagnostics"))
    code, model = _api(url, "/api/2.0/mlflow/registered-models/get?name=synthetic-itransformer-L48-H12-student-mlp",
                       auth=ADMIN)
    assert code == 200 and {a["alias"] for a in model["registered_model"]["aliases"]} >= {"champion", "challenger"}

    # no credentials: 401; a user denied the experiment: 403
    assert _api(url, "/api/2.0/mlflow/experiments/search", {"max_results": 1})[0] == 401
    code, _ = _api(url, "/api/3.0/mlflow/users/permissions/grant",
                   {"username": "carol", "resource_type": "experiment", "resource_id": exp_id,
                    "permission": "DENY"}, ADMIN)
    assert code == 200
    assert _api(url, f"/api/2.0/mlflow/experiments/get?experiment_id={exp_id}", auth=("carol", "carol-password-1"))[0] == 403


def test_wrong_credentials_are_a_clear_error(auth_server):
    url, root, _ = auth_server
    p = subprocess.run([sys.executable, "-m", "tdml.cli", "train-teacher", "--epochs", "1"], cwd=root,
                       env=_env(url, root, "alice", "not-the-password"), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "cannot use the MLflow tracking store" in p.stderr and "MLFLOW_TRACKING_PASSWORD" in p.stderr
    assert "Traceback" not in p.stderr
