"""Stopped processes leave no ghosts: a `tdml` process sent SIGTERM (docker compose stop,
scaling down, schedulers) or SIGINT (Ctrl-C) ends its MLflow run KILLED with the signal as the
reason -- no traceback -- and a stopped tune worker's trial is FAIL and queued again at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tuning_helpers import teacher_store, tiny_spec, worker_env, write_spec


def _wait(predicate, timeout: float = 120.0, proc: subprocess.Popen | None = None, log: Path | None = None):
    """``predicate()``'s first truthy value; fails at once, with the output, if ``proc`` ends first."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        got = predicate()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended ({proc.returncode}) before its run started:\n"
                        + (log.read_text()[-3000:] if log else ""))
        time.sleep(0.3)
    pytest.fail("timed out waiting for the process to reach its run:\n" + (log.read_text()[-3000:] if log else ""))


def _running(client: MlflowClient, role: str):
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return next((r for r in runs if r.data.tags.get("tdml.role") == role and r.info.status == "RUNNING"
                 and "n_params" in r.data.metrics), None)  # training has started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_ends_killed_with_the_reason(sig, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**worker_env(tmp_path), "MLFLOW_TRACKING_URI": uri, "TDML_DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "tdml.cli", "train-teacher", "--seq-len", "48", "--pred-len", "12",
           "--epochs", "200", "--no-progress", "--experiment", "signals",
           "--set", "train.patience=500"]  # early stopping would end the run (~20 epochs) before the signal
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a full pipe would block the process
    with open(log, "w") as err_file:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err_file, text=True)
        try:
            client = MlflowClient(uri)
            run = _wait(lambda: _running(client, "teacher"), timeout=240, proc=proc, log=log)
            proc.send_signal(sig)
            proc.wait(timeout=60)
        finally:
            proc.kill()
    err = log.read_text()
    assert proc.returncode == 128 + sig.value, err
    run = client.get_run(run.info.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["tdml.error"] == f"Stopped: stopped by {sig.name}"
    assert "Traceback" not in run.data.tags["mlflow.note.content"]
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    assert not client.search_registered_models()  # nothing half-registered


def _long_tune(tmp_path, name: str, storage: str, n_trials: int, extra: list[str] = ()) -> subprocess.Popen:
    """`tdml tune` of trials that train far longer than any test waits, started in the background."""
    spec = tiny_spec(name, finalize=False, plots=False, n_trials=n_trials,
                     base={"train": {"epochs": 200, "max_batches": 0, "patience": 500, "progress": False}})
    path = write_spec(tmp_path / "s.yaml", spec)
    return subprocess.Popen([sys.executable, "-m", "tdml.cli", "tune", "--study", str(path), "--storage", storage,
                             *extra], cwd=tmp_path, env=worker_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _sigterm_when(proc: subprocess.Popen, ready, timeout: float):
    """SIGTERM once ``ready()`` returns something; (that thing, the output). The command must exit
    with the signal's status."""
    try:
        found = _wait(ready, timeout=timeout)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM.value, out
    return found, out


def test_a_stopped_worker_fails_its_trial_and_queues_it_again(tmp_path):
    name, storage = f"sig-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp_path / 'optuna.db'}"
    with teacher_store(tmp_path) as client:
        proc = _long_tune(tmp_path, name, storage, n_trials=1)
        run, out = _sigterm_when(proc, lambda: _running(client, "trial"), timeout=180)
        study = optuna.load_study(study_name=name, storage=storage)
        assert sorted(t.state.name for t in study.trials) == ["FAIL", "WAITING"], out
        failed = next(t for t in study.trials if t.state == TrialState.FAIL)
        waiting = next(t for t in study.trials if t.state == TrialState.WAITING)
        # the same parameters, queued for the next worker to take now (not after a grace period)
        assert waiting.system_attrs["fixed_params"] == failed.params
        assert waiting.user_attrs["tdml.retry_of_stopped"] == failed.number
        trial_run = client.get_run(run.info.run_id)
        assert trial_run.info.status == "KILLED" and trial_run.data.tags["tdml.error"] == "Stopped: stopped by SIGTERM"
        parent = client.get_run(trial_run.data.tags["mlflow.parentRunId"])
        assert parent.info.status == "KILLED"


def test_a_stopped_tune_with_worker_processes_stops_every_worker(tmp_path):
    """`tdml tune --n-jobs 2` sent SIGTERM passes the stop to both worker processes: each trial
    is FAIL and queued again, each trial run and the study run end KILLED, and the command
    exits with the signal's status."""
    name, storage = f"sig-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp_path / 'optuna.db'}"
    with teacher_store(tmp_path) as client:
        proc = _long_tune(tmp_path, name, storage, n_trials=2, extra=["--n-jobs", "2"])

        def two_training():
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
            live = [r for r in runs if r.data.tags.get("tdml.role") == "trial" and r.info.status == "RUNNING"
                    and "n_params" in r.data.metrics]
            return live if len(live) == 2 else None

        live, out = _sigterm_when(proc, two_training, timeout=240)
        study = optuna.load_study(study_name=name, storage=storage)
        assert sorted(t.state.name for t in study.trials) == ["FAIL", "FAIL", "WAITING", "WAITING"], out
        for r in live:
            r = client.get_run(r.info.run_id)
            assert r.info.status == "KILLED" and r.data.tags["tdml.error"] == "Stopped: stopped by SIGTERM"
        parents = {client.get_run(r.info.run_id).data.tags["mlflow.parentRunId"] for r in live}
        assert len(parents) == 1 and client.get_run(parents.pop()).info.status == "KILLED"


def test_unreachable_tracking_server_and_bad_storage_are_clear_errors(tmp_path):
    env = {**worker_env(tmp_path), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    p = subprocess.run([sys.executable, "-m", "tdml.cli", "train-teacher", "--epochs", "1"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "cannot use the MLflow tracking store at http://127.0.0.1:9" in p.stderr
    assert "MLFLOW_TRACKING_URI" in p.stderr and "Traceback" not in p.stderr
    spec = write_spec(tmp_path / "s.yaml", tiny_spec())
    for url, what in (("foo://bar", "NoSuchModuleError"), ("mysql://u@127.0.0.1/db", "ImportError")):
        p = subprocess.run([sys.executable, "-m", "tdml.cli", "tune", "--study", str(spec), "--storage", url],
                           cwd=tmp_path, env=worker_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and f"cannot open the Optuna storage {url}: {what}" in p.stderr, p.stderr
        assert "sqlite:///optuna.db or postgresql+psycopg://" in p.stderr


def test_a_stop_inside_an_mlflow_call_is_raised_when_the_call_returns():
    """Unwinding in the middle of a store write can leave its transaction open, and the run's own
    KILLED update then waits on it: the signal handler defers the stop to the call's return."""
    from tdml import runstate
    from tdml.errors import Stopped

    done = []

    @runstate.timed
    def write():
        runstate.stop("SIGTERM")  # what the handler does when the signal lands here
        done.append("written")
        return "ok"

    try:
        with pytest.raises(Stopped, match="SIGTERM"):
            write()
        assert done == ["written"]
        with pytest.raises(Stopped, match="SIGTERM"):  # remembered: swallowing it once is not enough
            runstate.check_stop()
        with pytest.raises(Stopped, match="SIGINT"):  # outside any MLflow call: at once
            runstate.stop("SIGINT")
    finally:
        runstate.clear_stops()
    runstate.check_stop()  # nothing pending

    class Finalized:  # a signal landing in a finalizer (whose exceptions Python swallows)
        def __del__(self):
            runstate.stop("SIGTERM", sys._getframe())

    try:
        Finalized()  # collected at once: stop() must not raise inside __del__ ...
        with pytest.raises(Stopped, match="SIGTERM"):  # ... but at the next safe point
            runstate.check_stop()
    finally:
        runstate.clear_stops()


def test_a_stop_that_a_library_turned_into_its_own_error_still_queues_the_trial(tmp_path, mlflow_store):
    """The stop can land where a library catches the interruption and raises its own error (or
    inside an Optuna write): the trial is queued again whenever the worker was told to stop."""
    import mlflow

    from tdml import runstate
    from tdml.errors import Stopped
    from tdml.studies import load_spec
    from tdml.tuning.kinds import StudyKind
    from tdml.tuning.objective import make_objective

    class Interrupted(StudyKind):
        def run(self, overrides, callbacks, final):
            callbacks[0](0, {}, {"mse": 1.0}, 1e-3)  # one pruner report: an Optuna write
            try:
                runstate.stop("SIGTERM")  # what the handler does when the signal lands here ...
            except Stopped:
                raise RuntimeError("a library's own error") from None  # ... in a library that converts it

    spec = load_spec(write_spec(tmp_path / "s.yaml", tiny_spec(n_trials=1)))
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name=spec.name)
    try:
        with mlflow.start_run(experiment_id=mlflow.create_experiment("signals")) as parent:
            objective = make_objective(spec, Interrupted(spec), parent.info.run_id, tmp_path / "artifacts")
            with pytest.raises((RuntimeError, Stopped)):
                study.optimize(objective, n_trials=1, catch=())
    finally:
        runstate.clear_stops()
    states = sorted(t.state.name for t in study.trials)
    assert states == ["FAIL", "WAITING"]
    failed, waiting = study.trials
    assert waiting.system_attrs["fixed_params"] == failed.params
    assert waiting.user_attrs["tdml.retry_of_stopped"] == failed.number
