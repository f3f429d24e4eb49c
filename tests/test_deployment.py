"""The shared deployment. docker/compose.yaml is checked statically (and by `docker-compose
config` where installed); the same topology runs natively on loopback: `mlflow server
--app-name basic-auth` on PostgreSQL (runs, registry and users) with proxied artifacts, two
users' `tdml tune` workers on a PostgreSQL Optuna storage, checked through the REST API;
optuna-dashboard on the same storage and artifact folder, checked through its JSON API; a
worker SIGKILLed mid-trial, whose trial the other worker retries."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
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
    # verified credentials are cached: every request otherwise costs a scrypt check (~0.2 s CPU)
    assert _entrypoint_auth_cache_ttl() > 0
    assert mlflow_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"  # no GenAI job runner processes
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


def _entrypoint_auth_cache_ttl() -> int:
    """The credential-cache TTL docker/mlflow-entrypoint.sh writes (with compose's value), so the
    native server is configured as the container is."""
    line = next(x for x in (DOCKER / "mlflow-entrypoint.sh").read_text().splitlines()
                if x.startswith("auth_cache_ttl_seconds"))
    default = int(line.split(":-")[1].rstrip("}"))
    env = _compose()["services"]["mlflow"]["environment"]
    return int(env.get("MLFLOW_AUTH_CACHE_TTL_SECONDS", default))


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
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                   f"auth_cache_ttl_seconds = {_entrypoint_auth_cache_ttl()}\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
           "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": _compose()["services"]["mlflow"]["environment"][
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]}
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


def _tune(url: str, root: Path, user: str, spec: Path, optuna_url: str, *extra: str) -> subprocess.Popen:
    """A `tdml tune` worker logged in as ``user``; cwd ``root``, so its Optuna artifacts go to
    root/optuna-artifacts, the folder optuna-dashboard serves (compose: a shared volume)."""
    return subprocess.Popen([sys.executable, "-m", "tdml.cli", "tune", "--study", str(spec), "--storage", optuna_url,
                             *extra], cwd=root, env=_env(url, root, user), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _run(url: str, run_id: str) -> dict:
    code, got = _api(url, f"/api/2.0/mlflow/runs/get?run_id={run_id}", auth=ADMIN)
    assert code == 200, run_id
    run = got["run"]
    run["tags"] = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    return run


@pytest.fixture(scope="module")
def teacher(auth_server):
    """The tiny teacher, trained and registered by alice through the server."""
    url, root, _ = auth_server
    args = ["train-teacher", "--seq-len", "48", "--pred-len", "12", "--epochs", "1", "--no-progress",
            "--set", "train.max_batches=8", "--set", "tracking.latency_repeats=2"]
    p = subprocess.run([sys.executable, "-m", "tdml.cli", *args], cwd=root, env=_env(url, root, "alice"),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]


@pytest.fixture(scope="module")
def dashboard(auth_server):
    """optuna-dashboard on a free loopback port, on the workers' Optuna storage and artifact
    folder, started before any worker (as compose does) by compose.yaml's own command line."""
    url, root, optuna_url = auth_server
    bin_dir = Path(sys.executable).parent
    assert shutil.which("optuna-dashboard", path=str(bin_dir)), \
        "optuna-dashboard is not installed (it is in the test extra: pip install -e '.[test]')"
    (root / "optuna-artifacts").mkdir(exist_ok=True)
    port = free_port()
    command = _compose()["services"]["optuna-dashboard"]["command"]
    line = command[2].replace("$$", "$")
    for container, here in (("--host 0.0.0.0 --port 8080", f"--host 127.0.0.1 --port {port}"),
                            ("/work/optuna-artifacts", str(root / "optuna-artifacts"))):
        assert container in line, (container, line)
        line = line.replace(container, here)
    env = {**os.environ, "TDML_OPTUNA_STORAGE": optuna_url, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    log = open(root / "dashboard.log", "w")
    proc = subprocess.Popen([*command[:2], line], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/meta", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, \
                    "optuna-dashboard did not start: " + (root / "dashboard.log").read_text()[-3000:]
                time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def _get(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200, url
        return r.read(), r.headers.get("Content-Type", "")


def _dashboard_study(dash: str, name: str) -> tuple[int, dict]:
    """The study's id and detail (trials with user attrs and artifacts) from the dashboard's API."""
    studies = {s["study_name"]: s for s in json.loads(_get(f"{dash}/api/studies")[0])["study_summaries"]}
    assert name in studies, sorted(studies)
    sid = studies[name]["study_id"]
    return sid, json.loads(_get(f"{dash}/api/studies/{sid}")[0])


def test_two_users_workers_share_one_authenticated_server(auth_server, teacher, dashboard, monkeypatch, tmp_path):
    url, root, optuna_url = auth_server
    # a generous heartbeat grace: three servers' worth of processes share two cores here
    spec = write_spec(root / "s.yaml", tiny_spec("auth-study", plots=False, n_trials=2,
                                                storage={"heartbeat_interval": 2, "grace_period": 60}))
    # one worker finalises (test + register + promote); the others only search: concurrent
    # finalisations would race on registering the same model (docs/deployment.md)
    workers = [_tune(url, root, user, spec, optuna_url, *extra)
               for user, extra in (("alice", []), ("bob", ["--set", "finalize=false"]))]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[-2000:] for o in outs]

    import optuna

    study = optuna.load_study(study_name="auth-study", storage=optuna_url)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 4
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # MLflow 3.0 resolves proxied artifacts against it
    admin = MlflowClient(url)  # artifacts through the server's proxy
    code, exps = _api(url, "/api/2.0/mlflow/experiments/search", {"max_results": 100}, ADMIN)
    exp_id = next(e["experiment_id"] for e in exps["experiments"] if e["name"] == "tdml-tuning")
    runs = {t.user_attrs["mlflow_run_id"]: _run(url, t.user_attrs["mlflow_run_id"]) for t in study.trials}
    parents = {r["tags"]["mlflow.parentRunId"] for r in runs.values()}
    assert len(parents) == 2  # one study run per worker, each its own trials' parent
    assert {_run(url, p)["info"]["user_id"] for p in parents} == {"alice", "bob"}  # each worker as its own user
    for t in study.trials:
        r = runs[t.user_attrs["mlflow_run_id"]]
        assert r["info"]["status"] == "FINISHED"
        assert any(m["key"] == "best_val_mse" for m in r["data"]["metrics"])
        assert any(a.path.endswith("top_periods.csv") for a in admin.list_artifacts(r["info"]["run_id"], "diagnostics"))
    code, model = _api(url, "/api/2.0/mlflow/registered-models/get?name=synthetic-itransformer-L48-H12-student-mlp",
                       auth=ADMIN)
    assert code == 200 and {a["alias"] for a in model["registered_model"]["aliases"]} >= {"champion", "challenger"}

    # optuna-dashboard on the same storage: the study, every trial with its link to the MLflow
    # run on the server, and the trial's diagnostics as Optuna artifacts it serves
    sid, detail = _dashboard_study(dashboard, "auth-study")
    assert detail["directions"] == ["minimize"]
    assert sorted((t["number"], t["state"]) for t in detail["trials"]) == [(n, "Complete") for n in range(4)]
    for t in detail["trials"]:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        info = runs[attrs["mlflow_run_id"]]["info"]
        assert attrs["mlflow_run_url"] == f"{url}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}"
        assert info["experiment_id"] == exp_id, (t["number"], info, attrs)
        arts = {a["filename"]: a for a in t["artifacts"]}
        assert {"top_periods.csv", "kl_per_channel.csv", "spectrum.csv"} <= set(arts), (t["number"], sorted(arts))
    art = arts["kl_per_channel.csv"]
    body, ctype = _get(f"{dashboard}/artifacts/{sid}/{t['trial_id']}/{art['artifact_id']}")
    assert ctype.startswith("text/csv")
    local = admin.download_artifacts(attrs["mlflow_run_id"], "diagnostics/kl_per_channel.csv", str(tmp_path))
    assert Path(local).read_bytes() == body  # the same file as the MLflow run's, through the proxy

    # no credentials: 401; a user denied the experiment: 403
    assert _api(url, "/api/2.0/mlflow/experiments/search", {"max_results": 1})[0] == 401
    code, _ = _api(url, "/api/3.0/mlflow/users/permissions/grant",
                   {"username": "carol", "resource_type": "experiment", "resource_id": exp_id,
                    "permission": "DENY"}, ADMIN)
    assert code == 200
    assert _api(url, f"/api/2.0/mlflow/experiments/get?experiment_id={exp_id}", auth=("carol", "carol-password-1"))[0] == 403


def test_a_worker_killed_mid_trial_is_retried_by_the_other(auth_server, teacher, dashboard):
    """bob's worker is SIGKILLed while its trial runs; once its heartbeat is stale, alice's
    worker closes bob's runs as KILLED with the reason, retries the trial (same params) as the
    one trial it was asked for; bob's epochs stay in MLflow and Optuna. (alice starts once bob's
    heartbeat is stale: a worker looks for stale trials only when it starts a trial.)"""
    import optuna
    from optuna.trial import TrialState

    url, root, optuna_url = auth_server
    grace = 3
    raw = tiny_spec("kill-study", finalize=False, plots=False, n_trials=1,
                    storage={"heartbeat_interval": 1, "grace_period": grace})
    spec = write_spec(root / "kill.yaml", raw)
    # bob's copy trains far longer (base training is not a trial parameter): killed mid-trial
    slow = write_spec(root / "kill-slow.yaml", {**raw, "base": {**raw["base"], "train": {
        **raw["base"]["train"], "epochs": 1000, "patience": 1000, "max_batches": 2}}})
    bob = _tune(url, root, "bob", slow, optuna_url, "--n-trials", "1")
    storage = optuna.storages.RDBStorage(optuna_url)
    try:
        victim, deadline = None, time.time() + 240
        while victim is None and time.time() < deadline and bob.poll() is None:
            try:
                running = optuna.load_study(study_name="kill-study", storage=storage).get_trials(
                    states=(TrialState.RUNNING,))
            except KeyError:  # bob has not created the study yet
                running = []
            victim = next((t for t in running if t.intermediate_values and "mlflow_run_id" in t.user_attrs), None)
            time.sleep(0.3)
        assert victim is not None, bob.communicate()[0][-3000:] if bob.poll() is not None else "no trial ran"
        bob.send_signal(signal.SIGKILL)
        bob.communicate(timeout=30)
        killed_at = time.time()
        dead_run, bob_parent = victim.user_attrs["mlflow_run_id"], victim.user_attrs["mlflow_parent_run_id"]
        assert _run(url, dead_run)["info"]["status"] == "RUNNING"  # nobody can close it yet
        time.sleep(max(0.0, killed_at + grace + 1 - time.time()))  # bob's last heartbeat is now stale
        alice = _tune(url, root, "alice", spec, optuna_url, "--set", "finalize=false")
        out = alice.communicate(timeout=300)[0]
        assert alice.returncode == 0, out[-3000:]

        trials = optuna.load_study(study_name="kill-study", storage=storage).trials
        assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]  # nothing lost, nothing doubled
        dead, retry = trials[0], trials[1]
        assert dead.number == victim.number and dead.intermediate_values  # bob's epochs are kept
        assert retry.system_attrs["failed_trial"] == dead.number and retry.params == dead.params
        alice_parent = retry.user_attrs["mlflow_parent_run_id"]
        assert alice_parent != bob_parent
    finally:
        storage.engine.dispose()

    # MLflow: bob's trial run and bob's study run end KILLED with the reason (closed by alice's
    # worker), bob's logged epochs stay; the retry is alice's, tagged with the trial it retries
    r = _run(url, dead_run)
    assert r["info"]["status"] == "KILLED" and "worker died" in r["tags"]["tdml.error"], r["tags"]
    assert r["info"]["user_id"] == "bob" and r["data"]["metrics"]
    p = _run(url, bob_parent)
    assert p["info"]["status"] == "KILLED" and "worker died" in p["tags"]["tdml.error"], p["tags"]
    again = _run(url, retry.user_attrs["mlflow_run_id"])
    assert again["info"]["status"] == "FINISHED" and again["info"]["user_id"] == "alice"
    assert again["tags"]["tdml.retry_of"] == str(dead.number) and again["tags"]["mlflow.parentRunId"] == alice_parent
    assert _run(url, alice_parent)["info"]["status"] == "FINISHED"

    # optuna-dashboard shows the failed trial and its retry, with the retry's artifacts
    _, detail = _dashboard_study(dashboard, "kill-study")
    shown = {t["number"]: t for t in detail["trials"]}
    assert {n: t["state"] for n, t in shown.items()} == {0: "Fail", 1: "Complete"}
    assert any(a["filename"] == "top_periods.csv" for a in shown[retry.number]["artifacts"])


def test_wrong_credentials_are_a_clear_error(auth_server):
    url, root, _ = auth_server
    p = subprocess.run([sys.executable, "-m", "tdml.cli", "train-teacher", "--epochs", "1"], cwd=root,
                       env=_env(url, root, "alice", "not-the-password"), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "cannot use the MLflow tracking store" in p.stderr and "MLFLOW_TRACKING_PASSWORD" in p.stderr
    assert "Traceback" not in p.stderr


def test_workers_racing_to_create_the_experiment_all_log_into_it(mlflow_store, monkeypatch):
    """Workers starting together on a fresh server all create the study's experiment; MLflow's
    set_experiment, on losing that race (RESOURCE_ALREADY_EXISTS), returns the experiment without
    making it active, and the loser's study run and trials would land in Default (seen here with
    two workers: a trial run under experiments/0)."""
    import mlflow
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    from tdml import tracking

    mlflow.MlflowClient().create_experiment("raced")  # the other worker won the race
    real, calls = TrackingServiceClient.get_experiment_by_name, []

    def looked_too_early(self, name):  # this worker looked just before the other created it
        calls.append(name)
        return None if len(calls) == 1 else real(self, name)

    monkeypatch.setattr(TrackingServiceClient, "get_experiment_by_name", looked_too_early)
    with tracking.start_run("raced", "study r", "study") as parent:
        with tracking.start_run("", "nested", "teacher", nested=True) as nested:
            pass
    assert calls, "the race path was not taken"
    client = mlflow.MlflowClient()
    assert {client.get_experiment(r.info.experiment_id).name for r in (parent, nested)} == {"raced"}
