"""The frozen teacher's outputs computed once: cached and recomputed runs agree step by step
and in their final metrics (TimeDistill, KD, MemKD), entries are keyed by teacher and data,
and a second run reads the first one's entry from disk."""

from __future__ import annotations

import pytest
import torch

from tdml.cli import main
from tdml.config import DataConfig
from tdml.distill.timedistill import TimeDistillConfig
from tdml.data import load_data
from tdml.distill.timedistill import TimeDistillLoss
from tdml.models import build_model
from tdml.tasks import TASKS
from tdml.errors import CacheError
from tdml.teacher_cache import cache_key, teacher_outputs
from tdml.train import Distillation

from conftest import SHARED_DATA, runs_of, tiny_distill_args, tiny_teacher_args, use_store

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    data = load_data(DataConfig(seq_len=48, pred_len=12))
    teacher = build_model("itransformer", data.dims, {"d_model": 16, "n_heads": 2, "d_ff": 16}).eval()
    student = build_model("mlp", data.dims, {"d_model": 32})
    loss = TimeDistillLoss.from_models(TimeDistillConfig(alpha=1, beta=1), student, teacher)
    return data, teacher, student, loss


def test_cached_terms_equal_recomputed_terms_per_step(parts):
    data, teacher, student, loss = parts
    cached = teacher_outputs(teacher, "t/1", data, "train", loss.teacher_features(), 16, CPU, "memory")
    assert cached.pred.shape[0] == data.loader("train", 1).n_windows
    task = TASKS.get("forecast")
    with_cache = Distillation(student, teacher, loss, loss.weights(), task, cached=cached).train()
    without = Distillation(student, teacher, loss, loss.weights(), task).train()
    for i, batch in enumerate(data.loader("train", 32, shuffle=True, seed=3)):
        a, b = with_cache.terms(batch), without.terms(batch)
        assert set(a) == set(b) == {"gt", "pred_scale", "pred_period", "feat_scale", "feat_period", "loss"}
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)
        if i == 5:
            break


def test_disk_entries_are_reused_and_keyed_by_teacher_and_data(parts, tmp_path, monkeypatch):
    data, teacher, _, loss = parts
    monkeypatch.setenv("TDML_CACHE_DIR", str(tmp_path))
    names = loss.teacher_features()
    first = teacher_outputs(teacher, "t/1", data, "train", names, 16, CPU, "disk")
    again = teacher_outputs(teacher, "t/1", data, "train", names, 64, CPU, "disk")
    assert (first.source, again.source) == ("computed", "disk")
    torch.testing.assert_close(again.pred, first.pred)
    torch.testing.assert_close(again.full("encoder"), first.full("encoder"))
    assert len(list(tmp_path.iterdir())) == 1  # no temporary folder left behind
    other_data = load_data(DataConfig(seq_len=48, pred_len=12, data_path=None, split="ratio"))
    keys = {cache_key("t/1", data, "train", names), cache_key("t/2", data, "train", names),
            cache_key("t/1", data, "val", names), cache_key("t/1", data, "train", ()),
            cache_key("t/1", load_data(DataConfig(seq_len=24, pred_len=12)), "train", names)}
    assert len(keys) == 5
    assert cache_key("t/1", other_data, "train", names) == cache_key("t/1", data, "train", names)  # same rows
    assert teacher_outputs(teacher, "t/1", data, "train", names, 16, CPU, "recompute") is None


def test_the_cache_is_bounded_least_recently_used_first(parts, tmp_path, monkeypatch):
    data, teacher, _, loss = parts
    monkeypatch.setenv("TDML_CACHE_DIR", str(tmp_path))
    names = loss.teacher_features()
    first = teacher_outputs(teacher, "t/1", data, "train", names, 16, CPU, "disk")
    entry_bytes = sum(f.stat().st_size for d in tmp_path.iterdir() for f in d.iterdir())
    # room for two entries: t/1 read again (most recent use), then t/2 and t/3 written
    monkeypatch.setenv("TDML_CACHE_MAX_GB", str(2.5 * entry_bytes / 1e9))
    teacher_outputs(teacher, "t/2", data, "train", names, 16, CPU, "disk")
    assert teacher_outputs(teacher, "t/1", data, "train", names, 16, CPU, "disk").source == "disk"
    teacher_outputs(teacher, "t/3", data, "train", names, 16, CPU, "disk")
    kept = {d.name for d in tmp_path.iterdir()}
    assert kept == {cache_key(t, data, "train", names) for t in ("t/1", "t/3")}  # t/2: least recently used
    torch.testing.assert_close(first.pred, teacher_outputs(teacher, "t/1", data, "train", names, 16, CPU,
                                                           "disk").pred)  # an open entry still reads
    monkeypatch.setenv("TDML_CACHE_MAX_GB", str(0.5 * entry_bytes / 1e9))  # below one entry: refused
    with pytest.raises(CacheError, match=r"needs 0\.\d+ GB, more than the cache bound.*TDML_CACHE_MAX_GB.*"
                                         r"teacher_cache=recompute.*teacher_cache_dtype=float16"):
        teacher_outputs(teacher, "t/4", data, "train", names, 16, CPU, "disk")
    assert kept == {d.name for d in tmp_path.iterdir()}  # refused before anything was written or evicted


def _metrics(client, *extra):
    run = runs_of(client, "student")[0]
    assert run.info.status == "FINISHED"
    return run.data.metrics, run.data.tags


@pytest.fixture(scope="module")
def forecast_store(tmp_path_factory):
    with use_store(tmp_path_factory.mktemp("cache")) as client:
        assert main(tiny_teacher_args()) == 0
        yield client


def test_timedistill_run_with_cache_equals_the_run_without(forecast_store):
    uri = "models:/synthetic-itransformer-L48-H12@champion"
    args = [*tiny_distill_args(uri), "--epochs", "2", "--set", "tracking.register=false",
            "--set", "tracking.diagnostics=false"]
    results = {}
    for mode in ("recompute", "disk", "disk"):
        assert main([*args, "--set", f"teacher_cache={mode}"]) == 0
        results.setdefault(mode, []).append(_metrics(forecast_store))
    (off, off_tags), = results["recompute"]
    (first, first_tags), (second, second_tags) = results["disk"]
    assert off_tags["tdml.teacher_cache"] == "recompute"
    assert (first_tags["tdml.teacher_cache"], second_tags["tdml.teacher_cache"]) == ("disk: computed", "disk: disk")
    for m in (first, second):
        for k in ("test_mse", "test_mae", "best_val_mse", "train_seconds"):
            if k != "train_seconds":
                assert m[k] == pytest.approx(off[k], rel=1e-6), k


@pytest.mark.parametrize("method", ["kd", "memkd"])
def test_classification_runs_with_cache_equal_the_runs_without(method, tmp_path):
    if not (SHARED_DATA / "ucr" / "ItalyPowerDemand").is_dir():
        pytest.skip(f"UCR data not found at {SHARED_DATA / 'ucr'}")
    quick = ["--no-progress", "--set", "tracking.latency_repeats=2", "--set", "tracking.register=false"]
    with use_store(tmp_path, TDML_DATA_DIR=str(SHARED_DATA)) as client:
        assert main(["train-teacher", "--dataset", "ucr:ItalyPowerDemand", "--model", "lstm_teacher",
                     "--epochs", "2", *quick[:3]]) == 0
        metrics = []
        for mode in ("recompute", "memory"):
            assert main(["distill", "--teacher", "models:/ucr-italypowerdemand-lstm_teacher@champion",
                         "--method", method, "--epochs", "2", *quick, "--set", f"teacher_cache={mode}"]) == 0
            metrics.append(_metrics(client)[0])
        for k in ("test_auc_prc", "test_accuracy", "best_val_ce"):
            assert metrics[1][k] == pytest.approx(metrics[0][k], rel=1e-6), k
