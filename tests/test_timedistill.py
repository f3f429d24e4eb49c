import math

import pytest
import torch
import torch.nn.functional as F

from tdml.losses.timedistill import TimeDistillConfig
from tdml.contracts import ModelOutput
from tdml.losses.timedistill import (FEATURE_LOG_EPS, PRED_LOG_EPS, TimeDistillLoss, multi_period_loss,
                                      multi_scale_loss, period_distribution)
from tdml.models import Dims, build_model


def test_multi_scale_is_mean_over_pooled_scales():
    s, t = torch.randn(4, 16, 3), torch.randn(4, 16, 3)
    assert multi_scale_loss(s, s.clone(), 3, dim=1) == 0
    expected = []
    a, b = s.transpose(1, 2), t.transpose(1, 2)
    for k in range(4):
        expected.append(F.mse_loss(a, b))
        a, b = F.avg_pool1d(a, 2), F.avg_pool1d(b, 2)
    assert torch.isclose(multi_scale_loss(s, t, 3, dim=1), torch.stack(expected).mean())
    # scales = 0 is plain MSE
    assert torch.isclose(multi_scale_loss(s, t, 0, dim=1), F.mse_loss(s, t))


def _avg_pool_reference(s, t, scales, dim):
    """The reference code's multi-scale term with autograd: AvgPool1d(2) on both sides, MSE per scale."""
    a, b = s.movedim(dim, -1), t.movedim(dim, -1)
    losses = [F.mse_loss(a, b)]
    for _ in range(scales):
        if a.shape[-1] < 2:
            break
        a, b = F.avg_pool1d(a.flatten(0, -2).unsqueeze(1), 2).view(*a.shape[:-1], -1), \
            F.avg_pool1d(b.flatten(0, -2).unsqueeze(1), 2).view(*b.shape[:-1], -1)
        losses.append(F.mse_loss(a, b))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("shape,dim,scales", [((4, 24, 5), 1, 3), ((3, 5, 25), -1, 3), ((2, 3, 7), -1, 6),
                                              ((4, 17, 2), 1, 0), ((2, 2, 128), -1, 4), ((2, 3, 513), -1, 3),
                                              ((2, 300, 2), 1, 12)])
@pytest.mark.parametrize("teacher_grad", [True, False], ids=["regressor", "frozen"])
def test_multi_scale_value_and_gradients_equal_avg_pool_autograd(shape, dim, scales, teacher_grad):
    """The one-node multi-scale term (closed-form backward) against autograd through avg_pool1d,
    odd lengths (the pool drops a trailing element) and more scales than halvings included."""
    g = torch.Generator().manual_seed(1)
    base_s, base_t = torch.randn(*shape, generator=g, dtype=torch.float64), torch.randn(*shape, generator=g, dtype=torch.float64)
    out = []
    for fn in (multi_scale_loss, _avg_pool_reference):
        s, t = base_s.clone().requires_grad_(), base_t.clone().requires_grad_(teacher_grad)
        v = fn(s, t, scales, dim)
        v.backward()
        out.append((v.detach(), s.grad, t.grad))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-12, atol=0)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-10, atol=1e-14)
    if teacher_grad:
        torch.testing.assert_close(out[0][2], out[1][2], rtol=1e-10, atol=1e-14)
    else:
        assert out[0][2] is None


def test_period_term_gradient_with_a_frozen_teacher_equals_the_reference():
    """Prediction level: the teacher's forecast is a constant (no gradient asked for it)."""
    g = torch.Generator().manual_seed(2)
    base_s, t = torch.randn(6, 24, 3, generator=g, dtype=torch.float64), torch.randn(6, 24, 3, generator=g, dtype=torch.float64)
    grads = []
    for fn in (lambda s: multi_period_loss(s, t, 0.7, 1), lambda s: _reference_period_kl_tau(s, t, 0.7)):
        s = base_s.clone().requires_grad_()
        fn(s).backward()
        grads.append(s.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-12)


def _reference_period_kl_tau(s, t, tau):
    z_t = abs(torch.fft.rfft(t, dim=1))[:, 1:, :] / tau
    z_s = abs(torch.fft.rfft(s, dim=1))[:, 1:, :] / tau
    return F.kl_div(torch.log(F.softmax(z_s, dim=1) + 1e-8), F.softmax(z_t, dim=1), reduction="mean")


def test_period_distribution_drops_dc_and_sums_to_one():
    x = torch.randn(2, 24, 3) + 100.0  # a large mean (DC) must not matter
    p = period_distribution(x, 0.5, dim=1)
    assert p.shape == (2, 3, 12)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 3))
    torch.testing.assert_close(p, period_distribution(x - 100.0, 0.5, dim=1), atol=1e-4, rtol=1e-3)


def test_kl_modes_true_kl_and_reference_bin_average():
    s, t = torch.randn(5, 24, 2) * 0.3, torch.randn(5, 24, 2) * 0.3  # no probability near 1e-8
    ps, pt = period_distribution(s, 0.5, 1), period_distribution(t, 0.5, 1)
    true_kl = (pt * (pt.log() - ps.log())).sum(-1).mean()
    true = multi_period_loss(s, t, 0.5, 1, "full")
    ref = multi_period_loss(s, t, 0.5, 1, "reference")
    torch.testing.assert_close(true, true_kl)
    assert multi_period_loss(s, t, 0.5, 1) == ref  # reference is the default
    # the documented factor: true = number of frequency bins (12 here) x reference, up to
    # the reference's 1e-8 inside the log (which matters only for peaky distributions)
    torch.testing.assert_close(ref * 12, true, rtol=1e-5, atol=1e-7)
    assert multi_period_loss(s, s.clone(), 0.5, 1) < 1e-6


def _reference_period_kl(s, t, feature: bool):
    """The reference code's terms, written out independently: predictions [B, H, C] are
    transformed along H, softmax over the non-DC bins, then
    F.kl_div(torch.log(P_s + 1e-8), P_t, reduction='mean'); features [B, C, d] are permuted
    to [B, d, C] first and compared in log space (log_softmax both sides, log_target)."""
    if feature:
        s, t = s.permute(0, 2, 1), t.permute(0, 2, 1)
    z_t = abs(torch.fft.rfft(t, dim=1))[:, 1:, :] / 0.5
    z_s = abs(torch.fft.rfft(s, dim=1))[:, 1:, :] / 0.5
    if feature:
        return F.kl_div(F.log_softmax(z_s, dim=1), F.log_softmax(z_t, dim=1), reduction="mean", log_target=True)
    return F.kl_div(torch.log(F.softmax(z_s, dim=1) + 1e-8), F.softmax(z_t, dim=1), reduction="mean")


@pytest.mark.parametrize("feature", [False, True], ids=["predictions", "features"])
def test_default_period_term_is_the_reference_value_and_gradient(feature):
    g = torch.Generator().manual_seed(0)
    shape = (8, 7, 64) if feature else (8, 96, 7)  # features [B, C, d]; predictions [B, H, C]
    dim = -1 if feature else 1
    base_s = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
    base_t = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
    values, grads = [], []
    eps = FEATURE_LOG_EPS if feature else PRED_LOG_EPS  # what TimeDistillLoss passes per level
    for fn in (lambda s, t: multi_period_loss(s, t, 0.5, dim, log_eps=eps),
               lambda s, t: _reference_period_kl(s, t, feature)):
        s, t = base_s.clone().requires_grad_(), base_t.clone().requires_grad_()
        v = fn(s, t)
        v.backward()
        values.append(v.detach())
        grads.append((s.grad, t.grad))
    torch.testing.assert_close(values[0], values[1], rtol=1e-6, atol=0)
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-6, atol=1e-12)  # w.r.t. student
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-6, atol=1e-12)  # teacher / regressor
    # the full KL is larger by about the number of bins
    assert multi_period_loss(base_s, base_t, 0.5, dim, "full") > values[1] * 10


def test_loss_module_uses_the_reference_form_per_level():
    """TimeDistillLoss's default terms equal the reference formulas on real model outputs."""
    dims = Dims(seq_len=48, n_channels=3, pred_len=24, n_marks=4)
    teacher = build_model("itransformer", dims, {"d_model": 16, "n_heads": 2, "d_ff": 16})
    student = build_model("mlp", dims, {"d_model": 32})
    loss = TimeDistillLoss.from_models(TimeDistillConfig(), student, teacher)
    x = torch.randn(4, 48, 3)
    s, t = ModelOutput(*student.forward_features(x)), ModelOutput(*teacher.forward_features(x))
    terms = loss(s, t)
    torch.testing.assert_close(terms["pred_period"], _reference_period_kl(s.pred, t.pred, False))
    ht = loss.regressor(t.features["encoder"])
    torch.testing.assert_close(terms["feat_period"], _reference_period_kl(s.features["hidden"], ht, True))


def test_period_loss_gradients_stay_finite_for_peaky_and_zero_inputs():
    s = torch.zeros(2, 64, 3, requires_grad=True)  # |rfft| = 0: NaN gradient with .abs()
    t = (torch.randn(2, 64, 3) * 1e3).requires_grad_()  # softmax underflows to exact zeros
    loss = multi_period_loss(s, t, 0.5, 1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all() and torch.isfinite(t.grad).all()


def test_loss_terms_weights_and_regressor_shapes():
    dims = Dims(seq_len=48, n_channels=3, pred_len=12, n_marks=4)
    teacher = build_model("itransformer", dims, {"d_model": 16, "n_heads": 2, "d_ff": 16})
    student = build_model("mlp", dims, {"d_model": 32})
    loss = TimeDistillLoss.from_models(TimeDistillConfig(alpha=0.5, beta=2), student, teacher)
    assert loss.regressor.net[0].in_features == 16 and loss.regressor.net[-1].out_features == 32
    assert loss.weights() == {"pred_scale": 0.5, "pred_period": 0.5, "feat_scale": 2, "feat_period": 2}
    x = torch.randn(4, 48, 3)
    s = ModelOutput(*student.forward_features(x))
    t = ModelOutput(*teacher.forward_features(x))
    terms = loss(s, t)
    assert set(terms) == {"pred_scale", "pred_period", "feat_scale", "feat_period"}
    assert all(v.ndim == 0 and math.isfinite(v.item()) for v in terms.values())
    only_pred = TimeDistillLoss.from_models(TimeDistillConfig(beta=0), student, teacher)
    assert only_pred.regressor is None and set(only_pred(s, t)) == {"pred_scale", "pred_period"}


def test_feature_distillation_refuses_mismatched_feature_layout():
    from tdml.errors import IncompatibleTeacherError

    dims = Dims(seq_len=48, n_channels=3, pred_len=12)
    student = build_model("mlp", dims, {"d_model": 8})
    other = build_model("mlp", Dims(seq_len=48, n_channels=4, pred_len=12), {"d_model": 8})
    with pytest.raises(IncompatibleTeacherError, match="set beta=0"):
        TimeDistillLoss.from_models(TimeDistillConfig(), student, other)


@pytest.mark.parametrize("kind, n_params", [("reference", 16 * 32 + 32 + 32 * 32 + 32), ("linear", 16 * 32 + 32),
                                             ("lowrank", 16 * 4 + 4 * 32 + 32)])
def test_regressor_kinds_map_teacher_width_to_student_width(kind, n_params):
    dims = Dims(seq_len=48, n_channels=3, pred_len=12, n_marks=4)
    teacher = build_model("itransformer", dims, {"d_model": 16, "n_heads": 2, "d_ff": 16})
    student = build_model("mlp", dims, {"d_model": 32})
    loss = TimeDistillLoss.from_models(TimeDistillConfig(regressor=kind, regressor_rank=4), student, teacher)
    assert sum(p.numel() for p in loss.regressor.parameters()) == n_params
    x = torch.randn(4, 48, 3)
    terms = loss(ModelOutput(*student.forward_features(x)), ModelOutput(*teacher.forward_features(x)))
    sum(terms.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.regressor.parameters())


def test_terms_stay_float32_under_bf16_autocast():
    s, t = torch.randn(4, 24, 3), torch.randn(4, 24, 3)
    want = multi_period_loss(s, t, 0.5, 1) + multi_scale_loss(s, t, 3, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = multi_period_loss(s.bfloat16(), t, 0.5, 1) + multi_scale_loss(s.bfloat16(), t, 3, 1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=2e-2, atol=1e-4)  # only the inputs' bf16 rounding differs


@pytest.mark.parametrize("level", ["predictions", "features"])
@pytest.mark.parametrize("kl_mode", ["reference", "full"])
def test_fused_kernels_equal_the_plain_formulas_in_value_and_gradient(level, kl_mode):
    """kernels=plain (timedistill.py's readable formulas through autograd) vs the default
    kernels=fused (closed-form backward): the same values and gradients, in float64."""
    from tdml.losses.timedistill import KERNELS

    g = torch.Generator().manual_seed(7)
    shape, dim, eps = ((6, 7, 40), -1, FEATURE_LOG_EPS) if level == "features" else ((6, 48, 5), 1, PRED_LOG_EPS)
    base_s = torch.randn(*shape, generator=g, dtype=torch.float64)
    base_t = torch.randn(*shape, generator=g, dtype=torch.float64)
    out = {}
    for name, (scale, period) in KERNELS.items():
        s, t = base_s.clone().requires_grad_(), base_t.clone().requires_grad_()
        terms = [scale(s, t, 3, dim), period(s, t, 0.5, dim, kl_mode, eps)]
        sum(terms).backward()
        out[name] = ([float(v) for v in terms], s.grad, t.grad)
    (vf, gsf, gtf), (vp, gsp, gtp) = out["fused"], out["plain"]
    assert vf == pytest.approx(vp, rel=1e-9) and vf[1] > 0
    torch.testing.assert_close(gsf, gsp, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(gtf, gtp, rtol=1e-7, atol=1e-12)


def test_the_loss_module_runs_either_kernel_and_plain_is_selectable_by_config():
    from tdml.losses.timedistill import TimeDistillConfig

    assert TimeDistillConfig().kernels == "fused"
    with pytest.raises(Exception, match="kernels"):
        from tdml.config import coerce_dataclass

        coerce_dataclass(TimeDistillConfig, {"kernels": "cuda"}, "loss")
