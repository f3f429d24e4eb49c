"""train.grad_clip: the global gradient norm each optimiser step sees is at most the clip value;
0 (the default) leaves the gradients alone; negative values are rejected."""

import pytest
import torch

from tdml.config import DataConfig, TrainConfig
from tdml.data import load_data
from tdml.errors import ConfigError
from tdml.models import build_model
from tdml.tasks import TASKS
from tdml.train import Supervised, fit, seed_everything


_ADAM_STEP = torch.optim.Adam.step


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(seq_len=48, pred_len=12))


def _step_norms(data, monkeypatch, **train) -> list[float]:
    """Fit a small model on raw (unscaled) targets -- large gradients -- and record the global
    gradient norm at every optimiser step."""
    norms: list[float] = []
    step = _ADAM_STEP

    def recording_step(self, *a, **kw):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    seed_everything(0)
    model = build_model("mlp", data.dims, {"d_model": 16})
    cfg = TrainConfig(epochs=1, lr=0.01, seed=0, progress=False, max_batches=5, lr_schedule="constant", **train)
    fit(Supervised(model, TASKS.get("forecast")), data.loader("train", 32, True, 0), data.loader("val", 64), cfg)
    return norms


def test_grad_clip_bounds_the_step_gradient_norm(data, monkeypatch):
    free = _step_norms(data, monkeypatch)
    assert free and max(free) > 0.05  # unclipped gradients exceed the clip value below
    clipped = _step_norms(data, monkeypatch, grad_clip=0.05)
    assert len(clipped) == len(free)
    assert max(clipped) <= 0.05 * (1 + 1e-4)


def test_grad_clip_must_not_be_negative():
    with pytest.raises(ConfigError, match="grad_clip"):
        TrainConfig(grad_clip=-1.0).validate()
