import pytest
import torch

from tdml.config import DataConfig, TrainConfig
from tdml.losses.timedistill import TimeDistillConfig
from tdml.data import load_data
from tdml.losses.timedistill import TimeDistillLoss
from tdml.models import build_model
from tdml.tasks import TASKS
from tdml.schedules import schedule
from tdml.train import Distillation, Supervised, evaluate, fit, seed_everything

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
    assert [schedule(cfg).lr(e) for e in range(4)] == [0.01, 0.01, 0.005, 0.0025]
    cos = TrainConfig(lr=1.0, lr_schedule="cosine", epochs=4)
    assert schedule(cos).lr(0) == 1.0 and schedule(cos).lr(2) == pytest.approx(0.5)
    step = TrainConfig(lr=0.1, lr_schedule="step", lr_step=3, lr_factor=0.1, min_lr=1e-3)
    assert [schedule(step).lr(e) for e in (0, 2, 3, 6, 9)] == pytest.approx([0.1, 0.1, 0.01, 1e-3, 1e-3])


def test_plateau_follows_torchs_reduce_on_plateau():
    """Same decisions as torch.optim.lr_scheduler.ReduceLROnPlateau (threshold 0) on a loss."""
    losses = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9]
    cfg = TrainConfig(lr=0.1, lr_schedule="plateau", lr_patience=1, lr_factor=0.5, patience=5)
    ours, best = schedule(cfg), float("inf")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.0)
    for loss in losses:
        improved, best = loss < best, min(best, loss)
        ours.observe(improved)
        ref.step(loss)
        assert ours.lr(0) == pytest.approx(opt.param_groups[0]["lr"])
    assert ours.lr(0) == pytest.approx(0.1 * 0.5 ** 4)  # four decays: the test can fail


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


def test_predictions_fill_one_preallocated_tensor_equal_to_the_batches(data):
    """A sized loader's predictions are written into one tensor (no list + cat copy of the
    split); an unsized iterable of batches still works; both equal the per-batch outputs."""
    from tdml.contracts import run_model
    from tdml.train import predictions

    model = build_model("mlp", data.dims, {"d_model": 16}).eval()
    loader = data.loader("test", 100)
    with torch.no_grad():
        expected = torch.cat([run_model(model, b).pred for b in loader])
    got = predictions(model, loader).pred
    assert got.shape == (loader.n_windows, *expected.shape[1:]) and torch.equal(got, expected)
    assert torch.equal(predictions(model, list(loader)).pred, expected)  # no n_windows: concatenated
