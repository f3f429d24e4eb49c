import math

import pytest
import torch
import torch.nn.functional as F

from tdml.config import TimeDistillConfig
from tdml.distill.base import ModelOutput
from tdml.distill.timedistill import (TimeDistillLoss, multi_period_loss, multi_scale_loss,
                                      period_distribution)
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


def test_period_distribution_drops_dc_and_sums_to_one():
    x = torch.randn(2, 24, 3) + 100.0  # a large mean (DC) must not matter
    p = period_distribution(x, 0.5, dim=1)
    assert p.shape == (2, 3, 12)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 3))
    torch.testing.assert_close(p, period_distribution(x - 100.0, 0.5, dim=1), atol=1e-4, rtol=1e-3)


def test_kl_modes_true_kl_and_reference_bin_average():
    s, t = torch.randn(5, 24, 2), torch.randn(5, 24, 2)
    ps, pt = period_distribution(s, 0.5, 1), period_distribution(t, 0.5, 1)
    true_kl = (pt * (pt.log() - ps.log())).sum(-1).mean()
    bm = multi_period_loss(s, t, 0.5, 1, "batchmean")
    ref = multi_period_loss(s, t, 0.5, 1, "reference")
    torch.testing.assert_close(bm, true_kl)
    # what the reference computes, F.kl_div(log ps, pt, reduction='mean') = elementwise mean
    torch.testing.assert_close(ref, (pt * (pt.log() - ps.log())).mean())
    torch.testing.assert_close(ref * 12, bm)  # = true KL / number of frequency bins
    assert multi_period_loss(s, s.clone(), 0.5, 1) < 1e-6


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
