"""MLproject: every declared parameter reaches its command and parses; `mlflow run` works."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tdml.cli import build_parser

from conftest import REPO

SPEC = yaml.safe_load((REPO / "MLproject").read_text())
SAMPLE = {"float": "3", "string": "x"}


@pytest.mark.parametrize("entry", sorted(SPEC["entry_points"]))
def test_every_parameter_reaches_the_command_and_parses(entry):
    ep = SPEC["entry_points"][entry]
    params = ep.get("parameters", {})
    values = {k: SAMPLE[v.get("type", "string") if isinstance(v, dict) else v] for k, v in params.items()}
    for name in params:
        assert "{" + name + "}" in ep["command"], f"{entry}: parameter {name} never reaches the command"
    argv = shlex.split(ep["command"].format(**values))
    assert argv[:3] == ["python", "-m", "tdml.cli"]
    ns = build_parser().parse_args(argv[3:])
    for name, raw in values.items():
        got = getattr(ns, name)
        assert got is not None and str(got).rstrip("0").rstrip(".") == raw, (entry, name, got)


def test_main_window_defaults_are_the_resolvers():
    from tdml.resolve import ENTRY_DEFAULTS

    params = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]["main"]["parameters"]
    window = ENTRY_DEFAULTS["main"]["data"]
    assert (params["seq_len"]["default"], params["pred_len"]["default"]) == (window["seq_len"], window["pred_len"])


def test_mlflow_run_main_end_to_end(tmp_path):
    """The README's main job through `mlflow run`, shrunk by a config file."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("train: {max_batches: 5}\ntracking: {latency_repeats: 2}\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    # mlflow.set_experiment() in earlier tests exports MLFLOW_EXPERIMENT_ID; a fresh store lacks it
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local",
           "-P", "epochs=1", "-P", "seq_len=48", "-P", "pred_len=12", "-P", f"config={cfg}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("| teacher | itransformer |", "| student alone (no teacher) | mlp |",
                "| student distilled (timedistill) | mlp |", "distilled vs alone: "):
        assert row in proc.stdout, (row, proc.stdout)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert client.get_model_version_by_alias("synthetic-itransformer-L48-H12", "champion")
    student = client.get_model_version_by_alias("synthetic-itransformer-L48-H12-student-mlp", "champion")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    roles = sorted(r.data.tags.get("tdml.role") for r in runs)
    assert roles == ["pipeline", "student", "student", "teacher"] and all(r.info.status == "FINISHED" for r in runs)
    by_method = {r.data.params.get("config.method"): r for r in runs if r.data.tags.get("tdml.role") == "student"}
    assert set(by_method) == {"none", "timedistill"}
    assert student.run_id == by_method["timedistill"].info.run_id  # the baseline registers nothing
    parent = next(r for r in runs if r.data.tags.get("tdml.role") == "pipeline")
    m = parent.data.metrics
    assert m["alone_test_mse"] == pytest.approx(by_method["none"].data.metrics["test_mse"])
    assert m["student_test_mse"] == pytest.approx(by_method["timedistill"].data.metrics["test_mse"])
    assert m["student_vs_alone_mse_change"] == pytest.approx(m["student_test_mse"] / m["alone_test_mse"] - 1)
    summary = Path(client.download_artifacts(parent.info.run_id, "summary.md")).read_text()
    assert "| student alone (no teacher) | mlp |" in summary
    # the comparison report of this teacher's family: teacher, student alone, student distilled
    import pandas as pd

    report = pd.read_csv(client.download_artifacts(parent.info.run_id, "report/report.csv"))
    assert sorted(report.role) == ["student", "student", "teacher"]
    assert set(report.method.dropna()) == {"none", "timedistill"}
    assert "Pareto front" in Path(client.download_artifacts(parent.info.run_id, "report/report.html")).read_text()
