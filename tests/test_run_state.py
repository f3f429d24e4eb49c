"""Per-run state: MLflow seconds counted by the process (a run reads the difference), CPU
latency that restores torch's thread count, MemKD's seed resolved into the run config instead of
read from torch's global state. (Parallel trials are processes: tests/test_tuning.py.)"""

from __future__ import annotations

import time

import pytest
import torch

from tdml import latency, tracking
from tdml.losses.memkd import MemKDConfig, MemKDLoss
from tdml.models import Dims, build_model
from tdml.resolve import resolve_distill


def test_mlflow_seconds_count_every_timed_call():
    slow = tracking.timed(lambda: time.sleep(0.2))
    before = tracking.tracking_seconds()
    slow()
    assert 0.2 <= tracking.tracking_seconds() - before < 1.0


@pytest.fixture
def model_and_batch():
    model = build_model("mlp", Dims(seq_len=24, n_channels=2, pred_len=6), {"d_model": 8})
    return model, {"x": torch.randn(32, 24, 2)}


@pytest.fixture
def thread_count_changes(monkeypatch):
    """Every torch.set_num_threads call in this process."""
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    return calls


def test_latency_leaves_the_thread_count_alone_when_it_is_already_right(model_and_batch, thread_count_changes):
    assert latency.cpu_latency_ms(*model_and_batch, warmup=1, repeats=3, threads=torch.get_num_threads()) > 0
    assert thread_count_changes == []


def test_latency_sets_and_restores_the_thread_count(model_and_batch, thread_count_changes):
    before = torch.get_num_threads()
    assert latency.cpu_latency_ms(*model_and_batch, warmup=1, repeats=3, threads=before + 1) > 0
    assert thread_count_changes == [before + 1, before] and torch.get_num_threads() == before


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
