"""Unit properties of the condensation pieces (tiny tensors, no MLflow)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tdml.condensation.config import CondenseRunConfig
from tdml.condensation.condenser import start_epoch_bound
from tdml.condensation.experts import SharpnessAware
from tdml.condensation.matching import FlatParams, matching_loss, predict, unroll
from tdml.condensation.methods import method_defaults, parse_method
from tdml.runs.condense import condense_config
from tdml.condensation.plugins import frequency_value_loss, isib, pairwise_sym_kl
from tdml.condensation.synthetic import LAYOUTS, SyntheticSamples, SyntheticSeries, series_length
from tdml.errors import ConfigError
from tdml.models import Dims, build_model
from tdml.tasks import TASKS

DIMS = Dims(seq_len=8, n_channels=2, pred_len=4)


def _data(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, 2, generator=g), torch.randn(n, 4, 2, generator=g)


def _model(name="dlinear", **params):
    torch.manual_seed(0)
    return build_model(name, DIMS, {"moving_avg": 3} if name == "dlinear" else params)


# ------------------------------------------------------------------ DDTime frequency value loss
def test_frequency_value_loss_is_zero_for_identical_inputs_and_positive_otherwise():
    _, y = _data()
    for alpha in (0.0, 0.8, 1.0):
        assert frequency_value_loss(y, y.clone(), alpha).item() == 0.0
        assert frequency_value_loss(y, y + 0.1, alpha).item() > 0
    # alpha = 0 is the temporal L1; a constant shift lives only in the DC bin of the spectrum
    assert torch.isclose(frequency_value_loss(y, y + 0.1, 0.0), torch.tensor(0.1))
    shifted = frequency_value_loss(y, y + 0.1, 1.0)
    assert torch.isclose(shifted, torch.tensor(0.1 * 4 / 3))  # |DC diff| = 4*0.1 in 1 of 3 bins


def test_value_term_readings_differ_where_the_summary_is_ambiguous():
    """temporal l1 | mse; value_pair labels | student; value_grad labels | inputs: which tensors
    the value term's gradient reaches."""
    from tdml.condensation.plugins import DDTimeConfig, DDTimeTerms

    _, y = _data()
    assert torch.isclose(frequency_value_loss(y, y + 0.1, 0.0, "mse"), torch.tensor(0.01))
    model, (x, y) = _model(), _data()
    spec = FlatParams.of(model)
    theta = spec.flatten(model)
    for p in model.parameters():
        p.requires_grad_(False)

    def grads(**cfg):
        xs, ys = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        dd = DDTimeConfig(freq=True, isib=False, **cfg)
        with torch.set_grad_enabled(dd.value_grad == "inputs"):
            expert = predict(model, spec, theta + 0.1, xs)
        theta_k = unroll(model, spec, theta, xs, ys, 0.1, 2)
        student = predict(model, spec, theta_k, xs) if dd.value_pair == "student" else None
        DDTimeTerms(dd)(xs, ys, expert, student)["value"].backward()
        return xs.grad, ys.grad

    gx, gy = grads()  # the default: labels vs a detached expert forecast -> only Y moves
    assert gx is None and gy.abs().sum() > 0
    gx, gy = grads(value_grad="inputs")  # the expert's forecast moves X too
    assert gx.abs().sum() > 0 and gy.abs().sum() > 0
    gx, gy = grads(value_pair="student")  # the unrolled student's forecast: X and Y through theta_K
    assert gx.abs().sum() > 0 and gy.abs().sum() > 0
    for bad in ({"value_pair": "teacher"}, {"temporal": "huber"}, {"value_grad": "both"}):
        with pytest.raises(ConfigError, match=f"ddtime.{next(iter(bad))} '{next(iter(bad.values()))}' unknown"):
            condense_config({"ddtime": bad})


# ------------------------------------------------------------------ ISIB
def test_isib_is_one_for_identical_samples_and_decreases_as_samples_differ():
    x, y = _data(1)
    xs, ys = x.repeat(5, 1, 1), y.repeat(5, 1, 1)
    assert torch.isclose(isib(xs, ys, tau=1.0), torch.tensor(1.0))
    noise_x, noise_y = _data(5, seed=3)
    values = [isib(xs + s * noise_x, ys + s * noise_y, tau=1.0).item() for s in (0.0, 0.2, 0.5, 1.0, 2.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    # a lower temperature makes the same samples look more different
    assert isib(xs + noise_x, ys + noise_y, tau=0.5) < isib(xs + noise_x, ys + noise_y, tau=2.0)
    assert isib(xs + noise_x, ys + noise_y, 1.0, "spectrum") < 1.0


def test_pairwise_sym_kl_is_symmetric_nonnegative_with_zero_diagonal():
    z = torch.randn(4, 10)
    d = pairwise_sym_kl(z, 0.7)
    assert torch.allclose(d, d.T) and (d >= -1e-6).all() and torch.allclose(d.diagonal(), torch.zeros(4), atol=1e-6)
    p, q = torch.softmax(z[0] / 0.7, -1), torch.softmax(z[1] / 0.7, -1)
    ref = (p * (p / q).log()).sum() + (q * (q / p).log()).sum()
    assert torch.isclose(d[0, 1], ref, atol=1e-5)


def test_minimising_isib_makes_samples_more_diverse():
    x, y = _data(1)
    xs = (x.repeat(4, 1, 1) + 0.01 * torch.randn(4, 8, 2)).requires_grad_(True)
    ys = y.repeat(4, 1, 1)
    before = isib(xs, ys, 1.0).item()
    opt = torch.optim.SGD([xs], lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        isib(xs, ys, 1.0).backward()
        opt.step()
    assert isib(xs, ys, 1.0).item() < before


# ------------------------------------------------------------------ matching
@pytest.mark.parametrize("how", ["zero_steps", "zero_lr"])
def test_matching_loss_is_one_when_the_student_does_not_move(how):
    model = _model()
    spec = FlatParams.of(model)
    start = spec.flatten(model)
    target = start + torch.randn_like(start)
    x, y = _data()
    steps, lr = (0, 0.1) if how == "zero_steps" else (5, 0.0)
    theta = unroll(model, spec, start, x, y, lr, steps)
    assert torch.isclose(matching_loss(theta, start, target), torch.tensor(1.0))
    assert matching_loss(target.clone(), start, target).item() == 0.0


@pytest.mark.parametrize("name,params", [("dlinear", {}), ("mlp", {"d_model": 8}), ("cnn", {"channels": 4}),
                                         ("lstm_forecaster", {"hidden": 4})])
def test_functional_unroll_equals_manual_sgd_steps(name, params):
    import tdml.condensation  # noqa: F401  (registers cnn / lstm_forecaster)

    model = _model(name, **params).train()
    spec = FlatParams.of(model)
    x, y = _data()
    theta = unroll(model, spec, spec.flatten(model), x, y, 0.05, steps=2, create_graph=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    assert torch.allclose(theta, spec.flatten(model), atol=1e-6)
    assert torch.allclose(predict(model, spec, theta, x), model(x), atol=1e-5)


def test_unroll_is_differentiable_wrt_data_and_lr():
    model = _model()
    spec = FlatParams.of(model)
    start = spec.flatten(model)
    x, y = _data()
    x.requires_grad_(True)
    lr = torch.tensor(0.05, requires_grad=True)
    loss = matching_loss(unroll(model, spec, start, x, y, lr, 3), start, start + 1.0)
    loss.backward()
    assert x.grad.abs().sum() > 0 and lr.grad.abs() > 0


# ------------------------------------------------------------------ synthetic series
def test_windows_recut_from_the_series_reach_every_point():
    n, L, H, stride = 5, 8, 4, 4
    init = torch.randn(series_length(n, L, H, stride), 2)
    syn = SyntheticSeries(init, n, L, H, stride)
    x, y = syn.windows()
    assert x.shape == (n, L, 2) and y.shape == (n, H, 2)
    assert torch.equal(x[1], init[stride:stride + L]) and torch.equal(y[-1], init[-H:])
    (x.pow(2).sum() + y.pow(2).sum()).backward()
    assert (syn.values.grad.abs() > 0).all()  # every point of every channel gets a gradient
    # a step on the series changes the next cut
    with torch.no_grad():
        syn.values.add_(1.0)
    assert torch.equal(syn.windows()[0][0], init[:L] + 1.0)


def test_from_real_takes_a_real_segment():
    train = torch.arange(200, dtype=torch.float32)[:, None].repeat(1, 3)
    syn = SyntheticSeries.from_real(train, 4, 8, 4, 4, torch.Generator().manual_seed(1))
    s = syn.values.detach()
    assert torch.equal(s[1:] - s[:-1], torch.ones(s.shape[0] - 1, 3))  # contiguous rows
    with pytest.raises(ValueError, match="need"):
        SyntheticSeries.from_real(train[:10], 4, 8, 4, 4, torch.Generator())


def test_condtsf_update_moves_only_label_positions():
    L, H, stride, n = 4, 2, 6, 3  # stride > L + H: labels do not overlap inputs
    syn = SyntheticSeries(torch.zeros((n - 1) * stride + L + H, 1), n, L, H, stride)
    syn.interpolate_labels(torch.ones(n, H, 1), beta=0.5)
    series = syn.values.detach()
    labels = (syn.starts[:, None] + L + torch.arange(H)).reshape(-1)
    assert torch.allclose(series[labels], torch.full((n * H, 1), 0.5))
    mask = torch.ones(series.shape[0], dtype=torch.bool)
    mask[labels] = False
    assert (series[mask] == 0).all()


def test_samples_are_independent_real_windows():
    """DDTime's layout: S windows from distinct random starts; a gradient on one sample never
    reaches another, and CondTSF's label step touches only that sample's labels."""
    train = torch.arange(300, dtype=torch.float32)[:, None].repeat(1, 2)
    syn = LAYOUTS.get("samples").from_real(train, 6, 8, 4, 4, torch.Generator().manual_seed(0))
    assert isinstance(syn, SyntheticSamples) and syn.values.shape == (6, 12, 2)
    v = syn.values.detach().clone()
    firsts = v[:, 0, 0]
    assert len(set(firsts.tolist())) == 6 and torch.equal(v[:, 1:] - v[:, :-1], torch.ones(6, 11, 2))
    assert (firsts[1:] - firsts[:-1] != 4).any()  # not a stride-4 cut of one segment
    x, y = syn.windows()
    x[2].sum().backward()
    grad = syn.values.grad
    assert (grad[2, :8] != 0).all() and grad[2, 8:].abs().sum() == 0 and grad[[0, 1, 3, 4, 5]].abs().sum() == 0
    syn.interpolate_labels(torch.zeros(6, 4, 2), beta=0.5)
    assert torch.equal(syn.values[:, 8:].detach(), v[:, 8:] * 0.5) and torch.equal(syn.values[:, :8].detach(), v[:, :8])
    with pytest.raises(ValueError, match="6 independent samples need as many"):
        LAYOUTS.get("samples").from_real(train[:16], 6, 8, 4, 4, torch.Generator())


# ------------------------------------------------------------------ FTD, DATM, methods
def test_sharpness_aware_gradient_is_taken_at_the_perturbed_point():
    model = _model()
    x, y = _data()
    obj = SharpnessAware(model, TASKS.get("forecast"), rho=0.5)
    model.zero_grad()
    obj.terms({"x": x, "y": y})["loss"].backward()
    sam = [p.grad.clone() for p in model.parameters()]
    plain = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    norm = torch.sqrt(sum(g.pow(2).sum() for g in plain))
    with torch.no_grad():
        for p, g in zip(model.parameters(), plain):
            p.add_(0.5 * g / norm)
    at_shifted = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(sam, at_shifted))
    assert not all(torch.allclose(a, b) for a, b in zip(sam, plain))


def test_datm_window_widens():
    cfg = condense_config({"method": "mtt+datm", "match": {"iterations": 11, "max_start_epoch": 6,
                                                           "datm_initial": 1}})
    bounds = [start_epoch_bound(cfg, it, n_epochs=10) for it in range(11)]
    assert bounds[0] == 1 and bounds[-1] == 6 and bounds == sorted(bounds)
    plain = condense_config({"method": "mtt", "match": {"max_start_epoch": 6}})
    assert {start_epoch_bound(plain, it, 10) for it in range(5)} == {6}
    assert start_epoch_bound(plain, 0, n_epochs=4) == 3  # t + M must stay on the trajectory


def test_methods_set_defaults_and_explicit_settings_win():
    assert parse_method("MTT+condtsf+ddtime") == ("mtt", ["condtsf", "ddtime"])
    cfg = condense_config({"method": "mtt+ddtime"})
    assert cfg.ddtime.freq and cfg.ddtime.isib and not cfg.condtsf.enabled
    assert cfg.ddtime.alpha == 0.8 and cfg.ddtime.lam == 0.6 and cfg.condtsf.beta == 0.01
    cfg = condense_config({"method": "mtt+ddtime+ftd", "ddtime": {"isib": False}})
    assert cfg.ddtime.freq and not cfg.ddtime.isib and cfg.experts.sharpness > 0
    assert method_defaults("mtt") == {}
    for bad, hint in (("mtt+ddtim", "valid plug-ins"), ("gm", "valid bases"), ("random+ddtime", "no plug-ins"),
                      ("", "empty")):
        with pytest.raises(ConfigError, match=hint):
            condense_config({"method": bad})
    with pytest.raises(ConfigError, match="representation"):
        condense_config({"ddtime": {"representation": "hidden_state"}})
    with pytest.raises(ConfigError, match="unknown key"):
        condense_config({"ddtime": {"lambda": 0.3}})
    assert CondenseRunConfig().data.dataset == "etth1"
