"""End-to-end through the real MLflow tracking store and model registry (SQLite + local
artifacts): teacher -> registry alias -> student, pickle-free loading, diagnostics, and
bad input ending as FAILED runs that leave the registry untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tdml import tracking
from tdml.cli import main
from tdml.config import DataConfig
from tdml.data import load_data
from tdml.data.synthetic import make_synthetic
from tdml.models.itransformer import ITransformer
from tdml.models.mlp import MLP
from tdml.tasks import TASKS
from tdml.train import Supervised, evaluate

from conftest import runs_of as _runs, tiny_distill_args, tiny_teacher_args, use_store

TEACHER = "synthetic-itransformer-L48-H12"
URI = f"models:/{TEACHER}@champion"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with use_store(tmp_path_factory.mktemp("mlflow")) as client:
        assert main(tiny_teacher_args()) == 0
        assert main(tiny_distill_args(URI)) == 0
        yield client


def _registry_snapshot(client):
    return {m.name: (sorted(v.version for v in client.search_model_versions(f"name='{m.name}'")),
                     dict(client.get_registered_model(m.name).aliases))
            for m in client.search_registered_models()}


def test_teacher_run_is_tracked_and_registered(store):
    run = _runs(store, "teacher")[0]
    assert run.info.status == "FINISHED"
    m, p = run.data.metrics, run.data.params
    assert {"test_mse", "test_mae", "n_params", "cpu_latency_ms_b32", "best_val_mse"} <= set(m)
    assert p["config.model"] == "itransformer" and p["config.data.seq_len"] == "48"
    assert len(store.get_metric_history(run.info.run_id, "val_mse")) == 1
    mv = store.get_model_version_by_alias(TEACHER, "champion")
    assert mv.run_id == run.info.run_id
    # datasets as MLflow entities: one input per split used, with a digest of its rows
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"synthetic-train", "synthetic-val", "synthetic-test"}
    assert {i.tags[0].value for i in inputs.values()} == {"training", "validation", "testing"}
    assert len({i.dataset.digest for i in inputs.values()}) == 3
    assert run.info.run_name == "teacher itransformer synthetic L48-H12" and p["dataset"] == "synthetic"


def test_registered_teacher_loads_without_pickle_and_reproduces_its_test_mse(store):
    model, meta, mv = tracking.load_model(URI)
    assert isinstance(model, ITransformer) and meta["task"] == "forecast"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{TEACHER}/{mv.version}"))
    files = [p.name for p in local.rglob("*") if p.is_file()]
    assert "weights.safetensors" in files and not any(f.endswith((".pkl", ".pt", ".pth")) for f in files)
    assert "loader_module: tdml.serving" in (local / "MLmodel").read_text()
    data = load_data(DataConfig(seq_len=48, pred_len=12))
    feats = model.features(next(iter(data.loader("test", 4)))["x"])
    assert feats["encoder"].shape == (4, 5, model.params.d_model)
    test, _ = evaluate(Supervised(model, TASKS.get("forecast")), data.loader("test", 32))
    logged = store.get_run(mv.run_id).data.metrics["test_mse"]
    assert test["mse"] == pytest.approx(logged, rel=1e-5)


def test_pyfunc_serving_takes_raw_units(store):
    """A student (no calendar features) takes bare raw windows [B, L, C] float32 and answers in
    raw units; its signature says so and MLflow refuses another shape naming the expected one."""
    from mlflow.exceptions import MlflowException
    from mlflow.types import TensorSpec

    student_uri = f"models:/{TEACHER}-student-mlp@champion"
    pf = mlflow.pyfunc.load_model(student_uri)
    (spec,) = pf.metadata.get_input_schema().inputs
    assert isinstance(spec, TensorSpec) and spec.shape == (-1, 48, 5) and spec.type == np.float32
    assert pf.metadata.get_output_schema().inputs[0].shape == (-1, 12, 5)
    data = load_data(DataConfig(seq_len=48, pred_len=12))
    x = next(iter(data.loader("test", 2)))["x"]
    raw = x.numpy() * data.std.astype(np.float32) + data.mean.astype(np.float32)
    model, _, _ = tracking.load_model(student_uri)
    expected = model(x).detach().numpy() * data.std + data.mean
    np.testing.assert_allclose(pf.predict(raw), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pf.predict(raw[:1]), expected[:1], rtol=1e-4, atol=1e-4)  # one window
    with pytest.raises(MlflowException, match=re.escape("(48, 5) does not match expected shape (-1, 48, 5)")):
        pf.predict(raw[0])
    with pytest.raises(MlflowException, match="dtype of input float64 does not match expected dtype float32"):
        pf.predict(raw.astype(np.float64))


def test_pyfunc_serving_of_a_calendar_model_takes_dated_windows(store):
    """The teacher reads calendar marks: served from a DataFrame with dates it gives exactly the
    forecast it gave in its test run; a bare array (no dates) is refused, not silently served."""
    from mlflow.exceptions import MlflowException

    pf = mlflow.pyfunc.load_model(URI)
    schema = pf.metadata.get_input_schema()  # column-based: the dates and the training columns
    assert schema.input_names() == ["date", "ch0", "ch1", "ch2", "ch3", "OT"]
    assert [c.to_dict()["type"] for c in schema.inputs] == ["any"] + ["double"] * 5
    model, _, _ = tracking.load_model(URI)
    assert model.reads_marks()
    data = load_data(DataConfig(seq_len=48, pred_len=12))
    frame = make_synthetic()  # the rows the synthetic dataset is made of
    start = len(frame) - len(data.splits["test"].values)  # the test split's first window
    batch = next(iter(data.loader("test", 1)))
    expected = model(batch["x"], batch["x_mark"], batch["y_mark"])[0].detach().numpy() * data.std + data.mean
    history = frame.iloc[start - 10:start + 48]  # more rows than needed: the last 48 are used
    np.testing.assert_allclose(pf.predict(history), expected, rtol=1e-4, atol=1e-4)
    dated = history.assign(date=pd.to_datetime(history["date"]))  # datetimes as well as ISO strings
    np.testing.assert_allclose(pf.predict(dated), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(MlflowException, match=re.escape("missing inputs ['date', 'ch0'")):  # a bare array
        pf.predict(history.drop(columns="date").to_numpy())
    with pytest.raises(MlflowException, match=re.escape("missing inputs ['date']")):
        pf.predict(history.drop(columns="date"))
    with pytest.raises(MlflowException, match="needs the last 48"):
        pf.predict(history.iloc[:20])


def test_student_run_logs_every_term_and_registers_with_teacher_tags(store):
    run = _runs(store, "student")[0]
    assert run.info.status == "FINISHED"
    tags, m = run.data.tags, run.data.metrics
    mv_t = store.get_model_version_by_alias(TEACHER, "champion")
    assert tags["tdml.teacher_name"] == TEACHER and tags["tdml.teacher_version"] == str(mv_t.version)
    for term in ("gt", "pred_scale", "pred_period", "feat_scale", "feat_period", "loss"):
        assert f"train_{term}" in m
    assert {"test_mse", "teacher_test_mse", "param_ratio", "mlflow_share", "speedup"} <= set(m)
    assert 0 < m["mlflow_share"] < 1
    smv = store.get_model_version_by_alias(f"{TEACHER}-student-mlp", "champion")
    assert smv.tags["tdml.teacher_name"] == TEACHER and smv.tags["tdml.teacher_version"] == str(mv_t.version)
    student, _, _ = tracking.load_model(f"models:/{TEACHER}-student-mlp@champion")
    assert isinstance(student, MLP) and smv.run_id == run.info.run_id


def test_diagnostics_are_csv_and_offline_html(store):
    run = _runs(store, "student")[0]
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="diagnostics"))
    names = {p.name for p in local.iterdir()}
    assert {"spectrum.csv", "period_distribution.csv", "top_periods.csv", "kl_per_channel.csv",
            "error_per_scale.csv", "fft_report.html"} <= names
    kl = pd.read_csv(local / "kl_per_channel.csv")
    assert "kl_teacher_student" in kl and len(kl) == 5 and (kl["kl_teacher_student"] >= 0).all()
    dist = pd.read_csv(local / "period_distribution.csv")
    sums = dist.groupby(["source", "channel"]).probability.sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    html = (local / "fft_report.html").read_text()
    # one colour per series in every subplot (legend matches), readable period ticks
    for color in ("#222222", "#1f77b4", "#d62728"):
        assert f'"color":"{color}"' in html
    assert '"tickvals":[2,3,4,6,8,12]' in html
    # plotly.js embedded exactly once, nothing loaded from a CDN
    assert html.count("* plotly.js v") == 1 and not re.search(r"<script[^>]*src=", html)
    assert html.count("Plotly.newPlot") >= 4
    teacher_run = _runs(store, "teacher")[0]
    assert "diagnostics" in {a.path for a in store.list_artifacts(teacher_run.info.run_id)}


def _bad_csv(tmp_path, kind: str) -> str:
    n = 300 if kind != "short" else 40
    df = pd.DataFrame({"date": pd.date_range("2021-01-01", periods=n, freq="h").astype(str),
                       "a": np.arange(n, dtype=float), "b": np.cos(np.arange(n))})
    if kind == "nan":
        df.loc[3, "a"] = np.nan
    if kind == "text":
        df["c"] = "x"
    p = tmp_path / f"{kind}.csv"
    df.to_csv(p, index=False)
    return str(p)


BAD = {
    "nan": (lambda tp: tiny_teacher_args(data_path=_bad_csv(tp, "nan")), "missing values"),
    "text": (lambda tp: tiny_teacher_args(data_path=_bad_csv(tp, "text")), "'c' are not numeric"),
    "short": (lambda tp: tiny_teacher_args(data_path=_bad_csv(tp, "short")), "too few rows"),
    "dataset": (lambda tp: tiny_teacher_args(dataset="nope"), "valid datasets: synthetic"),
    "model": (lambda tp: tiny_teacher_args(model="gpt"), "unknown model 'gpt'; valid models: .*itransformer"),
    "no_model": (lambda tp: tiny_distill_args("models:/nope@champion"), "'nope' does not exist.*" + TEACHER),
    "no_alias": (lambda tp: tiny_distill_args(f"models:/{TEACHER}@prod"), "no alias 'prod'.*@champion"),
    "bad_uri": (lambda tp: tiny_distill_args("runs:/abc/model"), "not a registry URI"),
    "incompatible": (lambda tp: tiny_distill_args(URI, pred_len=24),
                     "pred_len: teacher 12, requested 24"),
    "channels": (lambda tp: tiny_distill_args(URI, data_path=_bad_csv(tp, "ok")),
                 "n_channels: teacher 5, requested 2"),
    "alpha": (lambda tp: tiny_distill_args(URI, alpha=-1), "alpha must be >= 0"),
    "temperature": (lambda tp: tiny_distill_args(URI, temperature=0), "temperature must be > 0"),
    "beta": (lambda tp: tiny_distill_args(URI, beta=-0.5), "beta must be >= 0"),
    "kl_mode": (lambda tp: tiny_distill_args(URI, kl_mode="mean"), "kl_mode: 'mean' is not one of 'reference', 'full'"),
    "alias": (lambda tp: tiny_teacher_args(alias="best.v2"), "alias 'best.v2' is not a valid MLflow alias"),
    "method": (lambda tp: tiny_distill_args(URI, method="magic"), "unknown distillation loss 'magic'.*timedistill"),
    "epochs": (lambda tp: tiny_teacher_args(epochs=0), "epochs must be >= 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_the_run_and_touches_nothing(store, tmp_path, capsys, case):
    args, message = BAD[case]
    before = _registry_snapshot(store)
    n_failed = len(_runs(store, status="FAILED"))
    code = main(args(tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(message, err), err
    failed = _runs(store, status="FAILED")
    assert len(failed) == n_failed + 1
    assert re.search(message, failed[0].data.tags["tdml.error"])
    assert _registry_snapshot(store) == before


def test_teacher_latency_is_read_from_its_run_not_remeasured(store):
    student = next(r for r in _runs(store, "student") if r.info.status == "FINISHED")
    teacher = store.get_run(student.data.tags["tdml.teacher_run_id"])
    assert student.data.tags["tdml.teacher_latency_source"] == f"teacher run {teacher.info.run_id}"
    assert student.data.metrics["teacher_cpu_latency_ms_b32"] == teacher.data.metrics["cpu_latency_ms_b32"]


@pytest.fixture
def serve(store):
    """`mlflow models serve` of a registered model on loopback; yields post(payload) -> (code, body)."""
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from conftest import free_port, wait_http

    procs = []

    def start(uri):
        port = free_port()
        env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
        procs.append(subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", uri,
                                       "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/ping", "mlflow models serve")

        def post(payload):
            req = urllib.request.Request(f"{url}/invocations", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        return post

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def test_served_model_answers_bad_windows_with_400_naming_the_shape(serve):
    """Through `mlflow models serve` over HTTP: a wrong window length, a wrong channel count, a
    single window without its batch axis (all refused by the signature) and a NaN get a 400 whose
    message says what was expected; a good window is forecast."""
    post = serve(f"models:/{TEACHER}-student-mlp@champion")
    code, body = post({"inputs": np.zeros((2, 48, 5)).tolist()})
    assert code == 200 and np.asarray(body["predictions"]).shape == (2, 12, 5)
    for shape in ((2, 40, 5), (1, 48, 3), (48, 5)):
        code, body = post({"inputs": np.zeros(shape).tolist()})
        assert code == 400 and f"Shape of input {shape} does not match expected shape (-1, 48, 5)" in body["message"], body
    bad = np.zeros((1, 48, 5))
    bad[0, 3, 1] = np.nan
    code, body = post({"inputs": bad.tolist()})
    assert code == 400 and "1 NaN or infinite value" in body["message"] and "[B, 48, 5]" in body["message"], body


def test_served_calendar_model_answers_bad_frames_with_400_naming_the_column(serve):
    """The calendar-feature teacher over HTTP: its logged serving example is forecast; a frame
    without 'date' or a training column, too few rows, bad dates or a NaN get a 400 naming it."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=URI))
    frame = json.loads((local / "serving_input_example.json").read_text())["dataframe_split"]
    post = serve(URI)

    def split(df):
        return {"dataframe_split": json.loads(df.to_json(orient="split", index=False))}

    good = pd.DataFrame(frame["data"], columns=frame["columns"])
    code, body = post(split(good))
    assert code == 200 and np.asarray(body["predictions"]).shape == (12, 5), body
    code, body = post(split(good.drop(columns="date")))
    assert code == 400 and "missing inputs ['date']" in body["message"], body
    code, body = post(split(good.drop(columns="ch0")))
    assert code == 400 and "missing inputs ['ch0']" in body["message"], body
    code, body = post(split(good.iloc[:20]))
    assert code == 400 and "input has 20 rows; this model needs the last 48" in body["message"], body
    code, body = post(split(good.assign(date="not a date")))
    assert code == 400 and "'date' column has values that are not dates" in body["message"], body
    nan = good.copy()
    nan.loc[3, "ch1"] = np.nan
    code, body = post(split(nan))
    assert code == 400 and "1 NaN or infinite value" in body["message"], body


def test_logged_student_has_an_input_example_and_linked_test_metrics(store):
    student_uri = f"models:/{TEACHER}-student-mlp@champion"
    info = mlflow.models.get_model_info(student_uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=student_uri))
    example = json.loads((local / "input_example.json").read_text())
    assert np.asarray(example).shape == (1, 48, 5)  # one raw window
    assert info.signature.inputs.inputs[0].shape == (-1, 48, 5)
    assert info.signature.outputs.inputs[0].shape == (-1, 12, 5)
    teacher = mlflow.models.get_model_info(URI)  # a calendar-feature model: a dated frame
    assert teacher.signature.inputs.input_names()[0] == "date" and teacher.saved_input_example_info["type"] == "dataframe"
    logged = mlflow.get_logged_model(info.model_id)
    linked = {m.key: m.value for m in logged.metrics or []}
    run = store.get_run(logged.source_run_id)
    assert linked["test_mse"] == pytest.approx(run.data.metrics["test_mse"])
    assert len(store.get_metric_history(run.info.run_id, "test_mse")) == 1  # logged once, linked


def test_report_command_tables_every_teacher_and_student(store, capsys):
    import pandas as pd

    assert main(["report", "--experiment", "tdml"]) == 0
    report_run = _runs(store, "report")[0]
    assert report_run.info.status == "FINISHED" and report_run.data.tags["mlflow.runName"] == "report tdml"
    df = pd.read_csv(store.download_artifacts(report_run.info.run_id, "report/report.csv"))
    expected = {r.info.run_id for r in _runs(store, status="FINISHED")
                if r.data.tags.get("tdml.role") in ("teacher", "student") and "test_mse" in r.data.metrics}
    assert set(df.run_id) == expected and {"teacher", "student"} <= set(df.role)
    assert {"test_mse", "n_params", "cpu_latency_ms_b32", "teacher", "alpha"} <= set(df.columns)
    html = Path(store.download_artifacts(report_run.info.run_id, "report/report.html")).read_text()
    assert html.count("plotly.js v") <= 2 and "Pareto front" in html  # plotly.js embedded once
    assert "test_mse" in capsys.readouterr().out
    family = main(["report", "--experiment", "tdml", "--family", TEACHER])
    assert family == 0


def test_report_of_an_unknown_experiment_is_a_clear_error(store, capsys):
    assert main(["report", "--experiment", "nope"]) == 2
    assert "experiment 'nope' does not exist" in capsys.readouterr().err


def test_a_run_scored_on_validation_shows_its_score_not_the_last_epochs(store):
    """A study's trial is scored on validation: its val_* metrics share their names with the
    per-epoch curve. MLflow shows a metric's latest step, so the score (the restored checkpoint's,
    what Optuna sees) is logged after the last epoch: the run's val_mse is best_val_mse."""
    args = tiny_distill_args(URI, epochs=4, patience=4)
    assert main([*args, "--set", "tracking.final_split=val", "--set", "tracking.register=false",
                 "--set", "tracking.log_model=false", "--set", "tracking.diagnostics=false",
                 "--set", "train.lr=0.05", "--experiment", "val-scored"]) == 0
    exp = store.get_experiment_by_name("val-scored").experiment_id
    [run] = [r for r in _runs(store, "student") if r.info.experiment_id == exp]
    m = run.data.metrics
    history = {h.step: h.value for h in store.get_metric_history(run.info.run_id, "val_mse")}
    assert sorted(history) == [0, 1, 2, 3, 4]  # four epochs, then the score
    assert m["val_mse"] == pytest.approx(m["best_val_mse"]) == pytest.approx(min(history[s] for s in range(4)))
    assert history[4] == pytest.approx(history[int(m["best_epoch"])])
    assert not any(k.startswith("test_") for k in m)
