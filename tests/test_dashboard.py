"""optuna-dashboard on loopback against a study written by `tdml tune`: the study, its trials
(with their MLflow run ids) and a trial's FFT-diagnostics CSV, read over its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tdml.cli import main

from tuning_helpers import free_port, teacher_store, tiny_spec, worker_env, write_spec


def _get(url: str) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read(), r.headers.get("Content-Type", "")


def _dashboard_cmd() -> list[str]:
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("optuna-dashboard is not installed (pip install -e '.[dashboard]')")
    return [exe]


def test_dashboard_serves_the_study_and_trial_artifacts(tmp_path):
    cmd = _dashboard_cmd()
    with teacher_store(tmp_path) as client:
        spec = write_spec(tmp_path / "s.yaml", tiny_spec("dash", n_trials=2, finalize=False, plots=False))
        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
        assert main(["tune", "--study", str(spec), "--storage", storage]) == 0
        artifacts = tmp_path / "optuna-artifacts"  # default: next to the SQLite file
        assert artifacts.is_dir() and any(artifacts.iterdir())
        port = free_port()
        proc = subprocess.Popen([*cmd, storage, "--host", "127.0.0.1", "--port", str(port),
                                 "--artifact-dir", str(artifacts)], cwd=tmp_path, env=worker_env(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    status, body, _ = _get(f"{base}/api/studies")
                    break
                except (urllib.error.URLError, ConnectionError):
                    assert proc.poll() is None, proc.communicate()[0]
                    assert time.time() < deadline, "optuna-dashboard did not answer within 60 s"
                    time.sleep(0.3)
            assert status == 200
            studies = {s["study_name"]: s for s in json.loads(body)["study_summaries"]}
            assert studies["dash"]["directions"] == ["minimize"]
            sid = studies["dash"]["study_id"]
            status, body, _ = _get(f"{base}/api/studies/{sid}")
            detail = json.loads(body)
            assert status == 200 and detail["name"] == "dash" and len(detail["trials"]) == 2
            trial = detail["trials"][0]
            attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
            run = client.get_run(attrs["mlflow_run_id"])  # dashboard -> MLflow link
            assert run.data.tags["tdml.trial_number"] == str(trial["number"])
            names = {a["filename"]: a for a in trial["artifacts"]}
            assert {"top_periods.csv", "kl_per_channel.csv", "spectrum.csv"} <= set(names)
            assert all(n.endswith(".csv") for n in names)  # the 5 MB HTML report stays in MLflow
            art = names["kl_per_channel.csv"]
            assert art["mimetype"] == "text/csv"
            status, body, ctype = _get(f"{base}/artifacts/{sid}/{trial['trial_id']}/{art['artifact_id']}")
            assert status == 200 and ctype.startswith("text/csv")
            header = body.decode().splitlines()[0]
            assert "kl_teacher_student" in header
            # the same file is an artifact of the trial's MLflow run
            local = MlflowClient().download_artifacts(run.info.run_id, "diagnostics/kl_per_channel.csv", str(tmp_path))
            assert Path(local).read_bytes() == body
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
