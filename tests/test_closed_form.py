"""The closed-form DLinear fit is the minimum a gradient-trained DLinear converges to (tiny problem)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tdml.condensation.closed_form import fit_dlinear_least_squares
from tdml.models import Dims, build_model

DIMS = Dims(seq_len=12, n_channels=3, pred_len=4)


def _problem(n=64, seed=0):
    """Targets an affine map of the inputs can only approximate (noise + a nonlinearity)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIMS.seq_len, DIMS.n_channels, generator=g)
    mix = torch.randn(DIMS.seq_len, DIMS.pred_len, generator=g) / DIMS.seq_len**0.5
    y = torch.einsum("blc,lh->bhc", x, mix) + 0.3 * torch.tanh(x[:, -DIMS.pred_len:]) ** 2 \
        + 0.2 * torch.randn(n, DIMS.pred_len, DIMS.n_channels, generator=g) + 0.5
    return x, y


def _batches(x, y, size):
    return [{"x": x[i:i + size], "y": y[i:i + size]} for i in range(0, x.shape[0], size)]


def _mse(model, x, y) -> float:
    with torch.no_grad():
        return F.mse_loss(model(x), y).item()


def _gradient_fit(model, x, y, steps=1500) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return _mse(model, x, y)


@pytest.mark.parametrize("individual", [False, True])
def test_closed_form_matches_a_converged_gradient_run(individual):
    x, y = _problem()
    params = {"moving_avg": 5, "individual": individual}
    torch.manual_seed(0)
    trained = build_model("dlinear", DIMS, params)
    gradient = _gradient_fit(trained, x, y)
    closed = fit_dlinear_least_squares(build_model("dlinear", DIMS, params), _batches(x, y, 10))
    exact = _mse(closed, x, y)
    # the gradient run converges to the same training loss, never below it
    assert exact <= gradient + 1e-6
    assert gradient == pytest.approx(exact, rel=1e-4)
    # and to the same predictor (the parameters themselves are not unique: W_s, W_t split freely)
    with torch.no_grad():
        assert torch.allclose(trained(x), closed(x), atol=1e-4)


def test_closed_form_does_not_depend_on_batching_or_initialisation():
    x, y = _problem(seed=1)
    torch.manual_seed(1)
    a = fit_dlinear_least_squares(build_model("dlinear", DIMS, {}), _batches(x, y, 64))
    torch.manual_seed(2)
    b = fit_dlinear_least_squares(build_model("dlinear", DIMS, {}), _batches(x, y, 7))
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-5)


def test_ridge_shrinks_the_weights_and_bad_input_is_refused():
    x, y = _problem(seed=2)
    plain = fit_dlinear_least_squares(build_model("dlinear", DIMS, {}), _batches(x, y, 16))
    ridge = fit_dlinear_least_squares(build_model("dlinear", DIMS, {}), _batches(x, y, 16), ridge=1.0)
    assert ridge.seasonal.weight.norm() < plain.seasonal.weight.norm()
    assert _mse(ridge, x, y) > _mse(plain, x, y)
    with pytest.raises(TypeError, match="needs a DLinear"):
        fit_dlinear_least_squares(build_model("mlp", DIMS, {"d_model": 8}), _batches(x, y, 16))
    with pytest.raises(ValueError, match="no batch"):
        fit_dlinear_least_squares(build_model("dlinear", DIMS, {}), [])
