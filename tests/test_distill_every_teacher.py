"""Every registered forecasting teacher can teach an MLP with feature distillation (beta > 0):
the regressor is built from declared feature shapes only, never from the model's name."""

import math

import pytest
import torch

from tdml.config import DataConfig, TrainConfig
from tdml.losses.timedistill import TimeDistillConfig
from tdml.data import load_data
from tdml.losses.timedistill import TimeDistillLoss
from tdml.models import MODELS, build_model
from tdml.models.defaults import default_params
from tdml.tasks import TASKS
from tdml.train import Distillation, fit, seed_everything

TEACHERS = [n for n in MODELS.names() if MODELS.get(n).task == "forecast" and n not in ("mlp", "dmlp")]


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(seq_len=48, pred_len=12, batch_size=16))


@pytest.mark.parametrize("name", TEACHERS)
def test_one_epoch_of_timedistill_from(name, data):
    seed_everything(0)
    teacher = build_model(name, data.dims, default_params(name, "synthetic"))
    student = build_model("mlp", data.dims, {"d_model": 16})
    loss = TimeDistillLoss.from_models(TimeDistillConfig(alpha=1.0, beta=1.0), student, teacher)
    d_teacher = teacher.feature_shapes()[teacher.distill_feature][-1]
    assert loss.regressor.net[0].in_features == d_teacher
    obj = Distillation(student, teacher, loss, loss.weights(), TASKS.get("forecast"))
    before = loss.regressor.net[0].weight.detach().clone()
    res = fit(obj, data.loader("train", 16, True, 0), data.loader("val", 64),
              TrainConfig(epochs=1, lr=0.01, progress=False, max_batches=3))
    hist = res.history[0]
    for term in ("train_feat_scale", "train_feat_period", "train_pred_scale", "train_pred_period"):
        assert math.isfinite(hist[term]), (name, term)
    assert not torch.equal(before, loss.regressor.net[0].weight)  # the regressor learned
    assert math.isfinite(res.best_val["mse"])
