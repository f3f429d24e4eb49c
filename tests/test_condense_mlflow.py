"""Condensation through a real MLflow store: expert trajectories round-trip and reuse, the CLI
end to end with its artifacts, bad input as a FAILED run, and the synthetic set as a dataset."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from tdml import tracking
from tdml.cli import main
from tdml.condensation.config import ExpertConfig
from tdml.condensation.dataset import read_synthetic
from tdml.condensation.experts import get_experts, load_experts
from tdml.config import DataConfig
from tdml.data import load_data
from tdml.errors import ConfigError, RegistryError

from conftest import use_store

EXP = "cli-e2e"
DATA = DataConfig(dataset="synthetic", seq_len=16, pred_len=8)
TINY_EXPERTS = ExpertConfig(n_experts=2, epochs=3, max_batches=5, seed=7)  # a key no other test uses
TINY = ["--set", "experts.n_experts=2", "--set", "experts.epochs=3", "--set", "experts.max_batches=5",
        "--set", "match.syn_steps=3", "--set", "match.max_start_epoch=2", "--set", "eval.epochs=4",
        "--set", "eval.select_epochs=2", "--set", "eval.select_every=2", "--set", "eval.seeds=[0,1]",
        "--set", "eval.models=[dlinear,mlp]", "--set", "eval.model_params.mlp.d_model=8"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one costs seconds); tests use their own experiments."""
    with use_store(tmp_path_factory.mktemp("mlflow")) as client:
        yield client


def _runs(client, experiment, role=None):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if role is None or r.data.tags.get("tdml.role") == role]


def test_expert_trajectories_round_trip_and_are_reused_without_retraining(store):
    client = store
    data = load_data(DATA)
    with tracking.start_run("experts-test", "parent", "condense"):
        ex, reused = get_experts("", data, DATA, TINY_EXPERTS, torch.device("cpu"))
    assert not reused and ex.trajectories.shape == (2, 4, ex.spec.numel)  # epoch 0 + 3 epochs
    assert not torch.equal(ex.trajectories[0, 0], ex.trajectories[0, -1])  # the experts moved
    assert not torch.equal(ex.trajectories[0], ex.trajectories[1])  # different seeds
    [run] = _runs(client, "experts-test", "experts")
    assert run.info.status == "FINISHED" and run.info.run_id == ex.run_id
    files = {f.path for f in client.list_artifacts(ex.run_id, "experts")}
    assert files == {"experts/trajectories.safetensors", "experts/experts.json"}

    loaded = load_experts(f"runs:/{ex.run_id}")
    assert torch.equal(loaded.trajectories, ex.trajectories) and loaded.spec == ex.spec
    assert loaded.model().config() == ex.model().config()

    with tracking.start_run("experts-test", "second", "condense"):
        again, reused = get_experts("", data, DATA, TINY_EXPERTS, torch.device("cpu"))
        by_id, reused_id = get_experts(f"runs:/{ex.run_id}", data, DATA, TINY_EXPERTS, torch.device("cpu"))
    assert reused and reused_id and again.run_id == by_id.run_id == ex.run_id
    assert len(_runs(client, "experts-test", "experts")) == 1  # nothing retrained
    with tracking.start_run("experts-test", "other settings", "condense"):
        _, reused = get_experts("", data, DATA, dataclasses.replace(TINY_EXPERTS, lr=3e-3), torch.device("cpu"))
    assert not reused and len(_runs(client, "experts-test", "experts")) == 2

    other = load_data(DataConfig(dataset="synthetic", seq_len=12, pred_len=8))
    with pytest.raises(ConfigError, match="seq_len: experts 16, requested 12"):
        get_experts(f"runs:/{ex.run_id}", other, DATA, TINY_EXPERTS, torch.device("cpu"))
    with pytest.raises(RegistryError, match="does not exist"):
        load_experts("runs:/0123456789abcdef")
    parent = [r for r in _runs(client, "experts-test", "condense") if r.info.run_name == "parent"][0]
    with pytest.raises(RegistryError, match="not a finished experts run"):
        load_experts(f"runs:/{parent.info.run_id}")


def test_condense_cli_end_to_end_then_train_teacher_on_the_synthetic_set(store, capsys):
    client = store
    args = ["condense", "--experiment", EXP, "--dataset", "synthetic", "--seq-len", "16", "--pred-len", "8", "--n-windows", "4",
            "--method", "mtt+condtsf+ddtime", "--iterations", "4", "--seed", "3", *TINY]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| mtt+condtsf+ddtime | dlinear |" in out and "| random real subset | mlp |" in out
    [run] = _runs(client, EXP, "condense")
    rid = run.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["tdml.method"] == "mtt+condtsf+ddtime"
    m = run.data.metrics
    for k in ("test_mse", "test_mse_std", "test_mae", "test_mse_mlp", "random_test_mse", "selected_val_mse",
              "val_mse", "diversity_isib", "wall_seconds"):
        assert k in m and np.isfinite(m[k]), k
    assert 0 <= m["selected_iteration"] <= 4 and m["selected_iteration"] % 2 == 0  # scored every 2
    assert run.data.params["config.ddtime.freq"] == "True" and run.data.params["config.condtsf.enabled"] == "True"
    assert len(client.get_metric_history(rid, "cond_match")) >= 1
    files = {f.path for d in ("synthetic", "report") for f in client.list_artifacts(rid, d)}
    assert {"synthetic/synthetic.npz", "synthetic/windows.csv", "synthetic/synthetic.json",
            "report/condense_report.html", "report/diversity_matrix.csv", "report/loss_curves.csv",
            "report/spectrum.csv", "report/series.csv", "report/selection.csv", "report/windows_vs_start.csv"} <= files
    assert "synthetic/series.csv" not in files  # DDTime's layout: independent samples, no series behind them
    local = tracking.download_run_artifacts(rid, "report")
    html = (local / "condense_report.html").read_text()
    # plotly.js embedded exactly once (offline), six figures: series, windows vs their real start,
    # spectra, diversity, losses, selection (+ diversity per candidate)
    assert html.count("plotly.js v") == 1 and html.count("Plotly.newPlot") == 6
    selection = pd.read_csv(local / "selection.csv")
    assert len(selection) == 3 and (selection.diversity_sym_kl > 0).all()  # candidates at 0, 2, 4
    chosen = selection[selection.iteration == m["selected_iteration"]]
    assert m["selected_diversity_sym_kl"] == pytest.approx(float(chosen.diversity_sym_kl.iloc[0]))
    starts = pd.read_csv(local / "windows_vs_start.csv")
    assert set(starts.source) == {"synthetic", "real start"} and starts.window.nunique() == 4
    x, y, meta = read_synthetic(tracking.download_run_artifacts(rid, "synthetic"))
    assert x.shape == (4, 16, 5) and y.shape == (4, 8, 5) and meta["layout"] == "samples"
    assert run.data.params["config.layout"] == "samples"

    # a second condensation (plain MTT: CondTSF's series layout) reuses the experts by run id
    experts_id = run.data.tags["tdml.experts_run_id"]
    assert main([*args, "--experts", f"runs:/{experts_id}", "--method", "mtt"]) == 0
    assert len(_runs(client, EXP, "experts")) == 1
    second = [r for r in _runs(client, EXP, "condense") if r.info.run_id != rid][0]
    assert second.data.tags["tdml.experts_reused"] == "True" and second.data.params["config.layout"] == "series"
    # its windows are re-cut from the stored series with stride 4
    folder = tracking.download_run_artifacts(second.info.run_id, "synthetic")
    x2, _, _ = read_synthetic(folder)
    series = np.load(folder / "synthetic.npz")["series"]
    assert np.allclose(series[4:20], x2[1].numpy()) and series.shape == (3 * 4 + 24, 5)
    assert (folder / "series.csv").is_file()

    # the synthetic set as a dataset: train = the synthetic windows, val/test = the real ones
    data = load_data(DataConfig(dataset=f"runs:/{rid}/synthetic"))
    real = load_data(DataConfig(dataset="synthetic", seq_len=16, pred_len=8))
    batch = next(iter(data.loader("train", 100)))
    assert torch.equal(batch["x"], x) and data.dims.seq_len == 16 and data.dims.n_marks == 0
    assert torch.equal(data.splits["test"].values, real.splits["test"].values)
    assert main(["train-teacher", "--dataset", f"runs:/{rid}/synthetic", "--model", "dlinear", "--epochs", "2",
                 "--no-progress", "--set", "tracking.latency_repeats=2", "--set", "tracking.diagnostics=false",
                 "--set", f"tracking.experiment={EXP}-teacher"]) == 0
    [teacher] = _runs(client, f"{EXP}-teacher", "teacher")
    assert teacher.info.status == "FINISHED" and teacher.data.params["data.n_windows_train"] == "4"
    assert teacher.data.params["data.n_windows_test"] == str(real.loader("test", 1).n_windows)
    assert "test_mse" in teacher.data.metrics
    with pytest.raises(Exception, match="runs:/<run_id>/synthetic"):
        load_data(DataConfig(dataset=f"runs:/{rid}/model"))


def test_bad_input_exits_2_with_a_failed_run(store, capsys):
    cases = [(["--method", "mtt+ddtim"], "valid plug-ins"),
             (["--set", "ddtime.tau=0"], "ddtime.tau must be > 0"),
             (["--experts", "models:/x@champion"], "expected runs:/<run_id>"),
             (["--set", "layout=windows"], "layout 'windows' unknown; valid: samples, series"),
             (["--n-windows", "1"], "n_windows must be >= 2 (ISIB compares pairs), got 1"),
             (["--set", "match.series_lr=0"], "match.series_lr must be > 0")]
    for i, (extra, message) in enumerate(cases):
        exp = f"bad-{i}"
        assert main(["condense", "--experiment", exp, "--dataset", "synthetic", "--seq-len", "16",
                     "--pred-len", "8", *extra]) == 2
        assert message in capsys.readouterr().err
        [run] = _runs(store, exp)
        assert run.info.status == "FAILED" and message in run.data.tags["tdml.error"]


def test_condense_on_etth1_through_the_cli(store, shared_data):
    """The issue's command, shrunk: ETTh1, 24 -> 24, 10 windows, DLinear experts, mtt+ddtime."""
    assert main(["condense", "--experiment", "etth1", "--dataset", "etth1", "--seq-len", "24", "--pred-len", "24", "--n-windows", "10",
                 "--method", "mtt+ddtime", "--iterations", "2", *TINY, "--set", "eval.seeds=[0]",
                 "--set", "eval.models=[dlinear]", "--set", "eval.baseline_random=false"]) == 0
    [run] = _runs(store, "etth1", "condense")
    assert run.info.status == "FINISHED" and run.data.params["config.data.dataset"] == "etth1"
    assert mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="synthetic/synthetic.npz")


def test_condense_study_kind_searches_on_validation_only(store):
    """studies/ddtime_etth1.yaml shrunk to the synthetic data: experts once, trials never read test."""
    from conftest import REPO
    from tdml.studies import load_spec
    from tdml.tuning import tune

    overrides = {"experiment": "study-test", "plots": False, "n_trials": 2,
                 "data": {"dataset": "synthetic", "seq_len": 16, "pred_len": 8},
                 "base": {"n_windows": 4, "experts": {"n_experts": 2, "epochs": 3, "max_batches": 5, "seed": 11},
                          "match": {"iterations": 2, "syn_steps": 2, "max_start_epoch": 2},
                          "eval": {"epochs": 3, "select_epochs": 2, "select_every": 1, "seeds": [0]}}}
    spec = load_spec(REPO / "studies" / "ddtime_etth1.yaml", overrides)
    result = tune(spec)
    assert result.n_trials["complete"] == 2 and not result.finals
    runs = _runs(store, "study-test")
    roles = sorted(r.data.tags.get("tdml.role") for r in runs)
    assert roles == ["experts", "study", "trial", "trial"]
    for trial in (r for r in runs if r.data.tags.get("tdml.role") == "trial"):
        assert trial.data.tags["tdml.experts_reused"] == "True"
        assert "val_mse" in trial.data.metrics and not any(k.startswith("test_") for k in trial.data.metrics)
        assert trial.data.params["config.tracking.final_split"] == "val"
    best = result.best[0]["params"]
    assert set(best) == {"ddtime.alpha", "ddtime.lam", "ddtime.tau", "ddtime.representation", "match.inner_lr",
                         "match.series_lr"}
    with pytest.raises(ConfigError, match="finalize: false"):
        from tdml.tuning import KINDS
        bad = load_spec(REPO / "studies" / "ddtime_etth1.yaml", {**overrides, "finalize": True})
        KINDS.get("condense")(bad).validate()


def test_experts_whose_artifacts_are_gone_are_trained_again_with_a_warning(store, caplog):
    """A store copied without its artifact folder (a benchmark's committed mlflow.db on a fresh
    checkout) still names a finished experts run for these settings: reuse by settings trains
    them again, with a warning; an explicit runs:/ URI stays an error."""
    import shutil
    from urllib.parse import urlparse

    client, data = store, load_data(DATA)
    cfg = dataclasses.replace(TINY_EXPERTS, seed=11)
    with tracking.start_run("experts-gone", "first", "condense"):
        ex, _ = get_experts("", data, DATA, cfg, torch.device("cpu"))
    shutil.rmtree(urlparse(client.get_run(ex.run_id).info.artifact_uri).path)
    with caplog.at_level("WARNING", logger="tdml.condensation.experts"):
        with tracking.start_run("experts-gone", "second", "condense"):
            again, reused = get_experts("", data, DATA, cfg, torch.device("cpu"))
    assert not reused and again.run_id != ex.run_id and torch.equal(again.trajectories, ex.trajectories)
    assert f"experts run {ex.run_id} has these settings but cannot be read" in caplog.text
    with tracking.start_run("experts-gone", "third", "condense"):
        third, reused = get_experts("", data, DATA, cfg, torch.device("cpu"))
    assert reused and third.run_id == again.run_id  # the newest readable run, not the broken one again
    with pytest.raises(RegistryError, match="has no artifact folder 'experts'"):
        get_experts(f"runs:/{ex.run_id}", data, DATA, cfg, torch.device("cpu"))
