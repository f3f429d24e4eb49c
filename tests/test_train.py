import pytest
import torch

from tdml.config import DataConfig, TrainConfig
from tdml.distill.timedistill import TimeDistillConfig
from tdml.data import load_data
from tdml.distill.timedistill import TimeDistillLoss
from tdml.models import build_model
from tdml.tasks import TASKS
from tdml.train import Distillation, Supervised, _lr_for_epoch, evaluate, fit, seed_everything

FORECAST = TASKS.get("forecast")


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(seq_len=48, pred_len=12))


def _run(data, seed, epochs=2, **train):
    seed_everything(seed)
    model = build_model("mlp", data.dims, {"d_model": 16})
    cfg = TrainConfig(epochs=epochs, lr=0.01, seed=seed, progress=False, max_batches=10, **train)
    res = fit(Supervised(model, FORECAST), data.loader("train", 32, True, seed), data.loader("val", 64), cfg)
    return model, res


def test_same_seed_same_metrics_different_seed_differs(data):
    _, a = _run(data, 3)
    _, b = _run(data, 3)
    _, c = _run(data, 4)
    assert a.best_val == b.best_val and a.history == b.history
    assert a.best_val != c.best_val


def test_best_checkpoint_restored_and_early_stopping(data):
    model, res = _run(data, 1, epochs=6, patience=1, lr_schedule="constant")
    obj = Supervised(model, FORECAST)
    val, _ = evaluate(obj, data.loader("val", 64))
    assert val["mse"] == pytest.approx(res.best_val["mse"], rel=1e-6)
    assert res.best_val["mse"] == min(h["val_mse"] for h in res.history)
    if res.stopped_early:
        assert res.epochs_run - 1 - res.best_epoch == 1


def test_reference_lr_schedule_halves_from_the_third_epoch():
    cfg = TrainConfig(lr=0.01)
    assert [_lr_for_epoch(cfg, e) for e in range(4)] == [0.01, 0.01, 0.005, 0.0025]
    cos = TrainConfig(lr=1.0, lr_schedule="cosine", epochs=4)
    assert _lr_for_epoch(cos, 0) == 1.0 and _lr_for_epoch(cos, 2) == pytest.approx(0.5)


def test_distillation_trains_student_and_regressor_not_teacher(data):
    seed_everything(0)
    teacher = build_model("itransformer", data.dims, {"d_model": 16, "n_heads": 2, "d_ff": 16})
    student = build_model("mlp", data.dims, {"d_model": 16})
    loss = TimeDistillLoss.from_models(TimeDistillConfig(), student, teacher)
    obj = Distillation(student, teacher, loss, loss.weights(), FORECAST)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    reg_before = loss.regressor.net[0].weight.clone()
    fit(obj, data.loader("train", 32, True, 0), data.loader("val", 64),
        TrainConfig(epochs=1, lr=0.01, progress=False, max_batches=5))
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not torch.equal(reg_before, loss.regressor.net[0].weight)
    assert not any(k.startswith("_teacher") for k in obj.state_dict())  # teacher not in checkpoints
    terms = obj.terms(next(iter(data.loader("train", 8))))
    assert {"gt", "pred_scale", "pred_period", "feat_scale", "feat_period", "loss"} <= set(terms)
