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
    # no --experiment-name: the work is in the `tdml` experiment, mlflow run's own run is a pointer
    exp = client.get_experiment_by_name("tdml")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    roles = sorted(r.data.tags.get("tdml.role") for r in runs)
    assert roles == ["pipeline", "student", "student", "teacher"] and all(r.info.status == "FINISHED" for r in runs)
    parent = next(r for r in runs if r.data.tags.get("tdml.role") == "pipeline")
    _assert_pointer(client, parent, "FINISHED", proc)
    by_method = {r.data.params.get("config.method"): r for r in runs if r.data.tags.get("tdml.role") == "student"}
    assert set(by_method) == {"none", "timedistill"}
    assert student.run_id == by_method["timedistill"].info.run_id  # the baseline registers nothing
    # run names say what each run is
    assert by_method["none"].info.run_name == "student mlp alone (no teacher) · synthetic-itransformer-L48-H12 data"
    assert by_method["timedistill"].info.run_name.startswith("student mlp ← synthetic-itransformer-L48-H12 v1 · timedistill α=")
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


def _assert_pointer(client, work, status: str, proc) -> None:
    """The launcher's run (Default experiment) points at ``work``; ``work`` keeps the project's tags."""
    from tdml.tracking import run_url

    (stub,) = client.search_runs(["0"])
    tags = stub.data.tags
    assert stub.info.status == status  # ended by `mlflow run` itself, from the exit status
    assert tags["tdml.role"] == "launcher" and tags["tdml.logged_in"] == work.info.run_id
    assert run_url(work.info.run_id, work.info.experiment_id) in tags["mlflow.note.content"]
    assert tags["mlflow.runName"].startswith("→ tdml")
    assert f"Run (ID '{stub.info.run_id}')" in proc.stderr and work.info.run_id in proc.stderr
    assert work.data.tags["tdml.launcher_run_id"] == stub.info.run_id
    assert work.data.tags["mlflow.source.type"] == "PROJECT"
    assert work.data.tags["mlflow.project.entryPoint"] == tags["mlflow.project.entryPoint"]


def _mlflow_run(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, MlflowClient]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    proc = subprocess.run([sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return proc, MlflowClient(env["MLFLOW_TRACKING_URI"])


def test_mlflow_run_failure_is_recorded_in_the_tdml_experiment_and_the_pointer(tmp_path):
    proc, client = _mlflow_run(tmp_path, "-e", "distill", "-P", "teacher=models:/nope@champion")
    assert proc.returncode != 0
    (work,) = client.search_runs([client.get_experiment_by_name("tdml").experiment_id])
    assert work.info.status == "FAILED" and "registered model 'nope' does not exist" in work.data.tags["tdml.error"]
    _assert_pointer(client, work, "FAILED", proc)


def test_mlflow_run_with_experiment_name_uses_its_run_as_is(tmp_path):
    proc, client = _mlflow_run(tmp_path, "--experiment-name", "chosen", "-e", "distill",
                               "-P", "teacher=models:/nope@champion")
    assert proc.returncode != 0
    exp = client.get_experiment_by_name("chosen")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["tdml.role"] == "student"
    assert f"Run (ID '{run.info.run_id}')" in proc.stderr
    assert client.get_experiment_by_name("tdml") is None and not client.search_runs(["0"])


@pytest.mark.parametrize("case", ["not a project run", "MLFLOW_EXPERIMENT_NAME", "experiment Default", "chosen"])
def test_a_launcher_run_is_used_as_is_unless_mlflow_run_put_it_in_default(mlflow_store, monkeypatch, case):
    """In process: which launcher runs (MLFLOW_RUN_ID) tdml resumes, and the one it redirects."""
    from tdml import tracking

    client = MlflowClient()
    project = {"mlflow.source.type": "PROJECT", "mlflow.project.entryPoint": "distill"}
    exp_id = client.create_experiment("chosen") if case == "chosen" else "0"
    stub = client.create_run(exp_id, tags={} if case == "not a project run" else project)
    monkeypatch.setenv("MLFLOW_RUN_ID", stub.info.run_id)
    if case == "MLFLOW_EXPERIMENT_NAME":
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "Default")
    with tracking.start_run("Default" if case == "experiment Default" else "tdml", "student", "student") as run:
        with tracking.start_run("", "nested", "teacher", nested=True) as child:
            pass
    assert run.info.run_id == stub.info.run_id and child.info.experiment_id == exp_id
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_project_run_in_default_is_redirected_in_process(mlflow_store, monkeypatch):
    from tdml import tracking

    client = MlflowClient()
    stub = client.create_run("0", tags={"mlflow.source.type": "PROJECT", "mlflow.project.entryPoint": "main"})
    monkeypatch.setenv("MLFLOW_RUN_ID", stub.info.run_id)
    with tracking.start_run("tdml", "main", "pipeline") as run:
        with tracking.start_run("", "teacher", "teacher", nested=True) as child:
            pass
    exp = client.get_experiment_by_name("tdml")
    assert run.info.experiment_id == child.info.experiment_id == exp.experiment_id
    assert "MLFLOW_RUN_ID" not in os.environ
    tags = client.get_run(stub.info.run_id).data.tags
    assert tags["tdml.logged_in"] == run.info.run_id and tags["mlflow.runName"] == "→ tdml · main"
    assert client.get_run(stub.info.run_id).info.status == "RUNNING"  # `mlflow run` ends it
