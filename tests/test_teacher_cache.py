"""The frozen teacher's outputs computed once: cached and recomputed runs agree step by step
and in their final metrics (TimeDistill, KD, MemKD), entries are keyed by teacher and data,
and a second run reads the first one's entry from disk."""

from __future__ import annotations

import pytest
import torch

from tdml.cli import main
from tdml.config import DataConfig
from tdml.losses.timedistill import TimeDistillConfig
from tdml.data import load_data
from tdml.losses.timedistill import TimeDistillLoss
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
            "--set", "tracking.diagnostics=false",
            "--set", "teacher_cache_dtype=float32"]  # exact storage: equal to float32 rounding (16-bit: below)
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
                         "--method", method, "--epochs", "2", *quick, "--set", f"teacher_cache={mode}",
                         "--set", "teacher_cache_dtype=float32"]) == 0
            metrics.append(_metrics(client)[0])
        for k in ("test_auc_prc", "test_accuracy", "best_val_ce"):
            assert metrics[1][k] == pytest.approx(metrics[0][k], rel=1e-6), k


def _failed_with(client, message: str) -> None:
    run = runs_of(client, "student")[0]
    assert run.info.status == "FAILED" and message in run.data.tags["tdml.error"], run.data.tags.get("tdml.error")


QUICK = ["--set", "tracking.register=false", "--set", "tracking.diagnostics=false"]


def test_compact_cache_dtypes_run_and_match_float32(forecast_store):
    uri = "models:/synthetic-itransformer-L48-H12@champion"
    got = {}
    for dtype in ("float32", "float16", "bfloat16"):
        assert main([*tiny_distill_args(uri), *QUICK, "--set", f"teacher_cache_dtype={dtype}"]) == 0
        got[dtype] = _metrics(forecast_store)[0]["test_mse"]
    assert main([*tiny_distill_args(uri), *QUICK]) == 0  # the default is float16 (docs/results.md)
    default = runs_of(forecast_store, "student")[0].data
    assert default.params["config.teacher_cache_dtype"] == "float16"
    assert default.metrics["test_mse"] == got["float16"]
    assert got["float16"] == pytest.approx(got["float32"], rel=1e-3)  # 11 mantissa bits of the outputs
    assert got["bfloat16"] == pytest.approx(got["float32"], rel=2e-2)


def test_an_unwritable_cache_folder_fails_the_run_and_says_so(forecast_store, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TDML_CACHE_DIR", str(blocker / "cache"))  # root ignores chmod; a file never holds folders
    assert main([*tiny_distill_args("models:/synthetic-itransformer-L48-H12@champion"), *QUICK]) == 2
    _failed_with(forecast_store, f"the teacher cache folder {blocker / 'cache'} is not writable")
    _failed_with(forecast_store, "set TDML_CACHE_DIR to a writable folder")


def test_a_cache_over_the_bound_fails_before_training_with_size_and_fix(forecast_store, monkeypatch):
    monkeypatch.setenv("TDML_CACHE_MAX_GB", "0.000001")
    monkeypatch.setenv("TDML_CACHE_DIR", str(forecast_store.tracking_uri.split("///")[1]) + "-cache")
    assert main([*tiny_distill_args("models:/synthetic-itransformer-L48-H12@champion"), *QUICK]) == 2
    _failed_with(forecast_store, "more than the cache bound TDML_CACHE_MAX_GB=1e-06")
    run = runs_of(forecast_store, "student")[0]
    assert "epoch" not in " ".join(forecast_store.get_run(run.info.run_id).data.metrics)  # nothing trained


def test_fp16_autocast_on_cpu_is_refused_before_training(forecast_store):
    assert main([*tiny_distill_args("models:/synthetic-itransformer-L48-H12@champion"), *QUICK,
                 "--set", "train.precision=fp16", "--set", "train.device=cpu"]) == 2
    _failed_with(forecast_store, "train.precision=fp16 is not supported on cpu (CPU autocast has no fast float16 "
                                 "path); supported here: fp32")


def test_bf16_on_a_cpu_without_it_is_refused(forecast_store, monkeypatch):
    import tdml.precision

    monkeypatch.setattr(tdml.precision, "cpu_has_bf16", lambda: False)  # this CPU's own answer, overridden
    assert main([*tiny_distill_args("models:/synthetic-itransformer-L48-H12@champion"), *QUICK,
                 "--set", "train.precision=bf16", "--set", "train.device=cpu"]) == 2
    _failed_with(forecast_store, "train.precision=bf16 is not supported on cpu (this CPU has neither AVX-512 BF16 "
                                 "nor AMX); supported here: fp32")


def test_bf16_training_runs_where_the_cpu_has_it(forecast_store):
    import tdml.precision

    if not tdml.precision.cpu_has_bf16():
        pytest.skip("this CPU has neither AVX-512 BF16 nor AMX")
    uri = "models:/synthetic-itransformer-L48-H12@champion"
    assert main([*tiny_distill_args(uri), *QUICK, "--set", "train.precision=bf16", "--epochs", "2"]) == 0
    bf16 = _metrics(forecast_store)[0]
    assert main([*tiny_distill_args(uri), *QUICK, "--epochs", "2"]) == 0
    fp32 = _metrics(forecast_store)[0]
    assert bf16["test_mse"] != fp32["test_mse"]  # the forwards really ran in bf16
    assert bf16["test_mse"] == pytest.approx(fp32["test_mse"], rel=0.1)


def test_a_dead_writers_temporary_folder_is_cleaned_up_later(parts, tmp_path, monkeypatch):
    import os
    import time

    data, teacher, _, loss = parts
    monkeypatch.setenv("TDML_CACHE_DIR", str(tmp_path))
    stale, fresh = tmp_path / ".abc-123-old", tmp_path / ".def-456-new"
    for d in (stale, fresh):
        d.mkdir()
        (d / "__pred__.bin").write_bytes(b"\0" * 64)
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    teacher_outputs(teacher, "t/9", data, "train", loss.teacher_features(), 16, CPU, "disk")
    assert not stale.exists() and fresh.exists()  # a writer still at work keeps its folder
