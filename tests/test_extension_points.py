"""The recipes of docs/architecture.md, done from outside the package: a dataset kind, a loss
and a study kind, each one definition and one registration, run through the real MLflow store
(and Optuna storage) with no change to any tdml module. (A teacher: test_teacher_zoo_registry.)"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.nn.functional as F

from tdml import tracking
from tdml.cli import main
from tdml.config import DataConfig, require
from tdml.data import LOADERS
from tdml.data.forecast import load_forecast_data
from tdml.losses import LOSSES
from tdml.losses.base import DistillationLoss
from tdml.runs.common import RunSummary
from tdml.studies import spec_from_dict
from tdml.tuning import KINDS, StudyKind, tune

from conftest import runs_of, tiny_distill_args, use_store

QUICK = ["--set", "tracking.diagnostics=false"]
TEACHER = "sine24-dlinear-L48-H12"


def _load_sine(cfg: DataConfig):
    """``sine:<period>``: two noisy sines of that period, 600 hourly rows, as a CSV once."""
    period = int(cfg.dataset.split(":", 1)[1])
    path = Path.cwd() / f"sine{period}.csv"
    if not path.is_file():
        t = np.arange(600)
        noise = np.random.default_rng(period).normal(0, 0.1, (2, 600))
        pd.DataFrame({"date": pd.date_range("2024-01-01", periods=600, freq="h"),
                      "a": np.sin(2 * np.pi * t / period) + noise[0],
                      "b": np.cos(2 * np.pi * t / period) + noise[1]}).to_csv(path, index=False)
    return load_forecast_data(replace(cfg, dataset=f"sine{period}", data_path=str(path)))


@dataclass
class _MatchConfig:
    weight: float = 1.0

    def validate(self):
        require(self.weight >= 0, f"weight must be >= 0, got {self.weight}")


class _MatchForecast(DistillationLoss):
    """One term, ``match_pred``: MSE between the student's and the teacher's forecasts."""

    Config = _MatchConfig

    def weights(self) -> dict[str, float]:
        return {"match_pred": self.cfg.weight}

    def forward(self, student, teacher, target=None):
        return {"match_pred": F.mse_loss(student.pred, teacher.pred)}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The sine kind and the loss registered from here (and removed after); a teacher on the kind."""
    LOADERS.register("sine")(_load_sine)
    LOSSES.register("match_forecast")(_MatchForecast)
    try:
        with use_store(tmp_path_factory.mktemp("ext")) as client:
            assert main(["train-teacher", "--dataset", "sine:24", "--model", "dlinear", "--seq-len", "48",
                         "--pred-len", "12", "--epochs", "1", "--no-progress", "--set", "train.max_batches=8",
                         "--set", "tracking.latency_repeats=2", *QUICK]) == 0
            yield client
    finally:
        LOADERS._items.pop("sine")
        LOSSES._items.pop("match_forecast")


def _student(client, method: str):
    return next(r for r in runs_of(client, "student") if r.data.params.get("method") == method)


def test_a_new_dataset_kind_is_one_loader_and_one_registration(store):
    teacher = store.get_model_version_by_alias(TEACHER, "champion")
    run = store.get_run(teacher.run_id)
    assert run.data.params["config.data.dataset"] == "sine:24" and run.data.params["dataset"] == "sine24"
    assert math.isfinite(run.data.metrics["test_mse"])
    # the student re-reads the teacher's data settings through the same kind
    assert main([*tiny_distill_args(f"models:/{TEACHER}@champion"), *QUICK]) == 0
    student = _student(store, "timedistill")
    assert student.info.status == "FINISHED" and student.data.params["config.data.dataset"] == "sine:24"


def test_a_new_loss_is_one_class_and_one_registration(store):
    args = tiny_distill_args(f"models:/{TEACHER}@champion", method="match_forecast")
    assert main([*args, "--set", "loss.weight=0.5", "--set", "tracking.register=false", *QUICK]) == 0
    run = _student(store, "match_forecast")
    assert run.info.status == "FINISHED" and run.data.params["loss.weight"] == "0.5"
    history = store.get_metric_history(run.info.run_id, "train_match_pred")
    assert history and all(math.isfinite(m.value) and m.value >= 0 for m in history)


class _Quadratic(StudyKind):
    """No model and no data: a trial's score is (x - 0.3)² + 1 / epoch, reported per epoch."""

    def run(self, overrides, callbacks, final: bool):
        x = overrides["loss"]["x"]
        for epoch in range(2):
            score = (x - 0.3) ** 2 + 1 / (epoch + 1)
            for cb in callbacks:
                cb(epoch, {}, {"score": score}, 0.0)
        tracking.log_metrics({"val_score": score})
        return RunSummary(tracking.active_run_id(), "trial", "quadratic", {"val_score": score}, 0, 0.0)


def test_a_new_study_kind_touches_no_tuning_module(tmp_path):
    KINDS.register("quadratic")(_Quadratic)
    try:
        spec = spec_from_dict({"name": "quadratic", "kind": "quadratic", "experiment": "ext-study",
                               "search_space": {"loss": {"x": {"type": "float", "low": -1.0, "high": 1.0}}},
                               "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"},
                               "objectives": [{"metric": "val_score"}], "plots": False, "finalize": False,
                               "storage": {"heartbeat_interval": 1, "grace_period": 3}})
        with use_store(tmp_path) as client:
            r = tune(spec, n_trials=3, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
            trials = runs_of(client, "trial")
    finally:
        KINDS._items.pop("quadratic")
    assert r.n_trials["complete"] == 3 and len(trials) == 3
    scores = sorted(t.data.metrics["objective_val_score"] for t in trials)
    assert r.best[0]["values"]["val_score"] == scores[0]
    assert abs(r.best[0]["params"]["loss.x"] - 0.3) ** 2 + 0.5 == pytest.approx(scores[0])
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {r.parent_run_id}
