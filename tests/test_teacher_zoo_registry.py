"""Every registered forecasting teacher, end to end through the real MLflow store and registry:
`tdml train-teacher` registers it under an alias, it reloads from `models:/...@champion`
without unpickling and reproduces its logged test MSE, and a `tdml distill` run with
alpha, beta > 0 uses it as the teacher (feature terms from its declared distill feature)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from tdml import tracking
from tdml.cli import main
from tdml.config import DataConfig
from tdml.data import load_data
from tdml.models import MODELS
from tdml.models.base import Forecaster, register_model
from tdml.models.defaults import default_params
from tdml.tasks import TASKS
from tdml.train import Supervised, evaluate

from conftest import runs_of, tiny_distill_args, tiny_teacher_args, use_store

STUDENTS = {"mlp", "dmlp"}
TEACHERS = [n for n in MODELS.names() if MODELS.get(n).task == "forecast" and n not in STUDENTS]
QUICK = ["--set", "tracking.diagnostics=false"]  # FFT reports are tested elsewhere


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with use_store(tmp_path_factory.mktemp("zoo")) as client:
        yield client


def _run_of(client, role: str, tag: str, value: str):
    return next(r for r in runs_of(client, role) if r.data.tags.get(tag) == value)


@pytest.mark.parametrize("name", TEACHERS)
def test_teacher_trains_registers_reloads_and_teaches(store, name):
    registered = f"synthetic-{name}-L48-H12"
    uri = f"models:/{registered}@champion"
    assert main([*tiny_teacher_args(model=name), *QUICK]) == 0

    model, meta, mv = tracking.load_model(uri)
    assert type(model) is MODELS.get(name) and meta["task"] == "forecast"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{registered}/{mv.version}"))
    files = [p.name for p in local.rglob("*") if p.is_file()]
    assert "weights.safetensors" in files and not any(f.endswith((".pkl", ".pt", ".pth")) for f in files)
    data = load_data(DataConfig(seq_len=48, pred_len=12))
    test, _ = evaluate(Supervised(model, TASKS.get("forecast")), data.loader("test", 32))
    assert test["mse"] == pytest.approx(store.get_run(mv.run_id).data.metrics["test_mse"], rel=1e-5)

    assert main([*tiny_distill_args(uri, alpha=1.0, beta=1.0), *QUICK]) == 0
    run = _run_of(store, "student", "tdml.teacher_name", registered)
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    assert m["teacher_n_params"] == model.n_parameters()
    for term in ("feat_scale", "feat_period", "pred_scale", "pred_period"):
        assert math.isfinite(m[f"train_{term}"]) and m[f"train_{term}"] >= 0, term
    assert m["train_feat_scale"] > 0  # the feature term is live, not a zero placeholder
    smv = store.get_model_version_by_alias(f"{registered}-student-mlp", "champion")
    assert smv.tags["tdml.teacher_name"] == registered and smv.tags["tdml.teacher_version"] == str(mv.version)


TIME_FEATURE_TEACHERS = [n for n in TEACHERS if MODELS.get(n).uses_time_features]


@pytest.mark.parametrize("name", TIME_FEATURE_TEACHERS)
def test_time_feature_teacher_trains_and_teaches_on_a_csv_without_dates(store, tmp_path, name):
    """Without a date column the model sees no calendar features (n_marks = 0) and still works."""
    t = np.arange(600)
    path = tmp_path / "nodates.csv"
    pd.DataFrame({"a": np.sin(2 * np.pi * t / 24), "b": np.cos(2 * np.pi * t / 12) + 0.01 * t}).to_csv(path, index=False)
    small = tmp_path / "small.yaml"  # the synthetic set's small sizes (a new file gets the ETTh1 ones)
    small.write_text(json.dumps({"model_params": default_params(name, "synthetic")}))
    assert main([*tiny_teacher_args(model=name, data_path=path, dataset="", config=small), *QUICK]) == 0
    model, meta, _ = tracking.load_model(f"models:/nodates-{name}-L48-H12@champion")
    assert model.dims.n_marks == 0 and meta["freq"] is None and not model.reads_marks()
    assert model.config()["params"] == default_params(name, "synthetic")
    assert main([*tiny_distill_args(f"models:/nodates-{name}-L48-H12@champion", alpha=1.0, beta=1.0), *QUICK]) == 0
    run = _run_of(store, "student", "tdml.teacher_name", f"nodates-{name}-L48-H12")
    assert run.info.status == "FINISHED" and math.isfinite(run.data.metrics["test_mse"])


@dataclass
class _ToyParams:
    width: int = 8


class _ToyTeacher(Forecaster):
    """A teacher the package has never seen: one Linear per channel, a 2-D per-channel feature."""

    Params = _ToyParams
    distill_feature = "latent"

    def __init__(self, dims, params):
        super().__init__(dims, params)
        self.encode = torch.nn.Linear(dims.seq_len, params.width)
        self.decode = torch.nn.Linear(params.width, dims.pred_len)

    def forward_features(self, x, x_mark=None, y_mark=None):
        h = torch.tanh(self.encode(x.transpose(1, 2)))  # [B, C, width]
        return self.decode(h).transpose(1, 2), {"latent": h}


@pytest.fixture
def toy_teacher():
    register_model("toy_teacher")(_ToyTeacher)
    try:
        yield "toy_teacher"
    finally:
        MODELS._items.pop("toy_teacher")  # keep the registry as the package defines it


def test_a_new_teacher_is_one_class_and_one_registration(store, toy_teacher):
    """Nothing in the trainer, the distiller, tracking or serving names the teachers it serves."""
    assert main([*tiny_teacher_args(model=toy_teacher), *QUICK]) == 0
    uri = f"models:/synthetic-{toy_teacher}-L48-H12@champion"
    model, _, _ = tracking.load_model(uri)
    assert isinstance(model, _ToyTeacher) and model.feature_shapes() == {"latent": (5, 8)}
    assert main([*tiny_distill_args(uri, alpha=1.0, beta=1.0), *QUICK]) == 0
    run = _run_of(store, "student", "tdml.teacher_name", f"synthetic-{toy_teacher}-L48-H12")
    assert run.info.status == "FINISHED" and run.data.metrics["train_feat_scale"] > 0
