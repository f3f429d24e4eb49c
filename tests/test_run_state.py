"""Per-run state that stays correct when a study runs trials as threads (n_jobs > 1): MLflow
seconds per thread, CPU latency without touching the process-wide thread count while another
thread has a run open, MemKD's seed resolved into the run config instead of read from torch's
global state. (Bit-identical parallel trials: tests/test_tuning.py.)"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from tdml import latency, runstate, tracking
from tdml.losses.memkd import MemKDConfig, MemKDLoss
from tdml.models import Dims, build_model
from tdml.resolve import resolve_distill


def test_mlflow_seconds_are_counted_per_thread():
    slow = tracking.timed(lambda: time.sleep(0.2))
    before = tracking.tracking_seconds()
    other = {}

    def work():
        start = tracking.tracking_seconds()
        slow()
        other["seconds"] = tracking.tracking_seconds() - start

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert other["seconds"] >= 0.2
    assert tracking.tracking_seconds() - before < 0.05  # the other thread's call is not ours


def _sibling_with_an_open_run():
    """A thread that holds a run open until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def hold():
        runstate.run_started()
        started.set()
        release.wait()
        runstate.run_ended()

    t = threading.Thread(target=hold)
    t.start()
    started.wait()
    return t, release


def test_open_runs_are_seen_from_other_threads_only():
    assert not runstate.other_threads_in_runs()
    runstate.run_started()
    try:
        assert not runstate.other_threads_in_runs()  # our own run is not a sibling
    finally:
        runstate.run_ended()
    t, release = _sibling_with_an_open_run()
    try:
        assert runstate.other_threads_in_runs()
    finally:
        release.set()
        t.join()
    assert not runstate.other_threads_in_runs()


@pytest.fixture
def model_and_batch():
    model = build_model("mlp", Dims(seq_len=24, n_channels=2, pred_len=6), {"d_model": 8})
    return model, {"x": torch.randn(32, 24, 2)}


@pytest.fixture
def thread_count_changes(monkeypatch):
    """Every torch.set_num_threads call in this process (the child process is not patched)."""
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    return calls


def test_latency_leaves_the_thread_count_alone_when_it_is_already_right(model_and_batch, thread_count_changes):
    assert latency.cpu_latency_ms(*model_and_batch, warmup=1, repeats=3, threads=torch.get_num_threads()) > 0
    assert thread_count_changes == []


def test_latency_sets_and_restores_the_thread_count_when_no_other_run_is_open(model_and_batch,
                                                                             thread_count_changes):
    before = torch.get_num_threads()
    assert latency.cpu_latency_ms(*model_and_batch, warmup=1, repeats=3, threads=before + 1) > 0
    assert thread_count_changes == [before + 1, before] and torch.get_num_threads() == before


def test_latency_beside_a_training_sibling_is_measured_in_a_child_process(model_and_batch, thread_count_changes):
    before = torch.get_num_threads()
    t, release = _sibling_with_an_open_run()
    try:
        ms = latency.cpu_latency_ms(*model_and_batch, warmup=1, repeats=3, threads=before + 1)
    finally:
        release.set()
        t.join()
    assert ms > 0 and thread_count_changes == [] and torch.get_num_threads() == before
    child = latency._children[before + 1]
    assert child.proc.poll() is None  # the child answered and is kept for the next measurement


def test_memkd_never_changes_the_config_it_is_given():
    cfg = MemKDConfig(long_pairs=4)
    torch.manual_seed(5)
    loss = MemKDLoss(cfg)
    assert cfg.seed is None and loss.cfg.seed == 5


def test_the_resolver_gives_memkd_the_runs_seed():
    meta = {"task": "classify", "model": {"name": "lstm_teacher"},
            "data_config": {"dataset": "ucr:Trace", "seq_len": 100}}
    cfg = resolve_distill({"teacher": "models:/t@champion", "train": {"seed": 7}}, meta)
    assert cfg.method == "memkd" and cfg.loss["seed"] == 7
    explicit = resolve_distill({"teacher": "models:/t@champion", "train": {"seed": 7}, "loss": {"seed": 3}}, meta)
    assert explicit.loss["seed"] == 3
    forecast = resolve_distill({"teacher": "models:/t@champion"})
    assert "seed" not in forecast.loss  # a loss without its own randomness gets nothing added
