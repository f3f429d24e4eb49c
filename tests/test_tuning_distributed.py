"""Scale-out: two `tdml tune` worker processes on one PostgreSQL study (every trial recorded
once, each linked to an MLflow run), and a worker SIGKILLed mid-trial whose trial is found
stale by heartbeat, retried with the same parameters and completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from tdml import tuning
from tdml.studies import spec_from_dict

from tuning_helpers import PG_URL, pg_available, runs, teacher_store, tiny_spec, worker_env, write_spec


def _worker(root, spec_path, storage, n_trials, *extra):
    cmd = [sys.executable, "-m", "tdml.cli", "tune", "--study", str(spec_path), "--storage", storage,
           "--n-trials", str(n_trials), *extra]
    return subprocess.Popen(cmd, cwd=root, env=worker_env(root), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.skipif(not pg_available(), reason="PostgreSQL not reachable on 127.0.0.1:5432 (database test)")
def test_two_workers_on_postgresql_record_every_trial_once(tmp_path):
    name = f"tdml-test-{uuid.uuid4().hex[:10]}"
    raw = tiny_spec(name, finalize=False, plots=False)
    try:
        with teacher_store(tmp_path) as client:
            spec_path = write_spec(tmp_path / "s.yaml", raw)
            tuning.create_or_load_study(spec_from_dict(raw), PG_URL)  # once, before the workers
            procs = [_worker(tmp_path, spec_path, PG_URL, 2) for _ in range(2)]
            outs = [p.communicate(timeout=240)[0] for p in procs]
            assert [p.returncode for p in procs] == [0, 0], outs
            study = optuna.load_study(study_name=name, storage=PG_URL)
            trials = study.trials
            assert len(trials) == 4 and sorted(t.number for t in trials) == [0, 1, 2, 3]
            assert all(t.state == TrialState.COMPLETE for t in trials)
            parents = {r.info.run_id for r in runs(client, "study", name)}
            assert len(parents) == 2  # one parent run per worker invocation
            children = {r.info.run_id: r for r in runs(client, "trial", name)}
            run_ids = [t.user_attrs["mlflow_run_id"] for t in trials]
            assert len(set(run_ids)) == 4 and set(run_ids) == set(children)  # once each, no strays
            for t in trials:
                child = children[t.user_attrs["mlflow_run_id"]]
                assert child.data.tags["tdml.trial_number"] == str(t.number)
                assert child.data.tags["mlflow.parentRunId"] == t.user_attrs["mlflow_parent_run_id"]
                assert child.data.tags["mlflow.parentRunId"] in parents
                assert child.data.metrics["objective_val_mse"] == t.value
                assert child.data.metrics["best_val_mse"] == pytest.approx(t.value, rel=1e-6)
            per_parent = [sum(c.data.tags["mlflow.parentRunId"] == p for c in children.values()) for p in parents]
            assert per_parent == [2, 2]
    finally:
        try:
            optuna.delete_study(study_name=name, storage=PG_URL)
        except KeyError:
            pass


def test_killed_worker_trial_is_retried_and_completed(tmp_path):
    raw = tiny_spec("killed", finalize=False, plots=False, sampler={"name": "random", "seed": 3})
    raw["base"]["train"].update(epochs=40, patience=40)  # long enough to be killed mid-trial
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    with teacher_store(tmp_path) as client:
        spec_path = write_spec(tmp_path / "s.yaml", raw)
        tuning.create_or_load_study(spec_from_dict(raw), storage)
        proc = _worker(tmp_path, spec_path, storage, 1)
        study = optuna.load_study(study_name="killed", storage=storage)
        deadline = time.time() + 120
        victim = None
        while time.time() < deadline and proc.poll() is None:
            running = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                       if len(t.intermediate_values) >= 1 and "mlflow_run_id" in t.user_attrs]
            if running:
                victim = running[0]
                break
            time.sleep(0.2)
        assert victim is not None, proc.communicate()[0] if proc.poll() is not None else "no running trial"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert client.get_run(victim.user_attrs["mlflow_run_id"]).info.status == "RUNNING"
        time.sleep(raw["storage"]["grace_period"] + 1)  # the dead worker's heartbeat goes stale
        # a second worker (shorter base training: not a trial parameter) picks the retry up
        spec2 = spec_from_dict({**raw, "base": {**raw["base"], "train": {**raw["base"]["train"], "epochs": 2}}})
        r = tuning.tune(spec2, n_trials=1, storage=storage)
        trials = optuna.load_study(study_name="killed", storage=storage).trials
        assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
        retried = trials[1]
        assert retried.system_attrs["failed_trial"] == victim.number
        assert retried.params == victim.params  # the same trial, run again
        dead = client.get_run(victim.user_attrs["mlflow_run_id"])
        assert dead.info.status == "KILLED" and "worker died" in dead.data.tags["tdml.error"]
        again = client.get_run(retried.user_attrs["mlflow_run_id"])
        assert again.info.status == "FINISHED" and again.data.tags["tdml.retry_of"] == str(victim.number)
        assert again.data.tags["mlflow.parentRunId"] == r.parent_run_id
