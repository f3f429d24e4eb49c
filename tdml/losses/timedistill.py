"""TimeDistill (docs/methods.md §1.3): multi-scale + multi-period distillation, on predictions
(weight alpha) and on features through a learned regressor (weight beta).

    L = MSE(ys, y) + alpha [Lscale(ys, yt) + Lperiod(ys, yt)]
                   + beta  [Lscale(hs, R(ht)) + Lperiod(hs, R(ht))]

Shapes: predictions [B, H, C] with time on axis 1; features [B, C, d] with the hidden
axis last -- as in the reference code, scale and period act along that hidden axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tdml.config import require
from tdml.losses.base import LOSSES, DistillationLoss, ModelOutput
from tdml.losses.fused import MultiScaleMSE, PeriodKL, spectrum
from tdml.errors import IncompatibleTeacherError
from tdml.precision import full

# 'reference': the reference code's F.kl_div(log(P_s + 1e-8), P_t, reduction='mean') = KL / bins;
# 'full': the full KL per (sample, channel) distribution = bins x 'reference' (multi_period_loss).
KLMode = Literal["reference", "full"]
# The feature regressor R (teacher width -> student width): 'reference' is the reference code's
# Linear -> ReLU -> Linear, as large as the student (half a distilled step's arithmetic on
# ETTh1); 'linear' one Linear; 'lowrank' Linear(D -> r) -> Linear(r -> d), r = regressor_rank.
# Which is the default is decided on validation data (docs/results.md, "The method decision").
RegressorKind = Literal["reference", "linear", "lowrank"]


@dataclass
class TimeDistillConfig:
    # Class defaults = the reference code's generic script; per-dataset values live in
    # tdml/models/defaults.yaml (the resolver puts them over these).
    alpha: float = 1.0  # weight of prediction-level multi-scale + multi-period terms
    beta: float = 1.0  # weight of feature-level terms
    temperature: float = 0.5  # tau of the period distribution softmax
    scales: int = 3  # number of AvgPool(2) down-samplings S (scales 0..S)
    kl_mode: KLMode = "reference"
    regressor: RegressorKind = "reference"
    regressor_rank: int = 64  # for regressor=lowrank
    kernels: Literal["fused", "plain"] = "fused"  # KERNELS: the same terms, fused or as plain autograd ops

    def validate(self):
        require(self.alpha >= 0, f"alpha must be >= 0 (0 disables prediction distillation), got {self.alpha}")
        require(self.beta >= 0, f"beta must be >= 0 (0 disables feature distillation), got {self.beta}")
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        require(self.scales >= 0, f"scales must be >= 0, got {self.scales}")
        require(self.regressor_rank >= 1, f"regressor_rank must be >= 1, got {self.regressor_rank}")


def multi_scale_loss(s: torch.Tensor, t: torch.Tensor, scales: int, dim: int) -> torch.Tensor:
    """Mean over k = 0..S of MSE between AvgPool(2)^k of student and teacher along ``dim``.

    Scales whose length would drop below 1 are skipped; AvgPool(kernel 2, stride 2) drops a
    trailing odd element. Pooling is linear, so the difference is pooled once (equal to pooling
    both sides up to float rounding). One autograd node (``tdml.losses.fused``).
    """
    with _float32(s):
        return MultiScaleMSE.apply(full(s).movedim(dim, -1), full(t).movedim(dim, -1), scales)


def _float32(like: torch.Tensor):
    """The terms run in float32 under mixed precision (tdml.precision): their FFT, softmax and
    pooling sums lose the small differences they measure in bf16."""
    return torch.autocast(like.device.type, enabled=False)



def period_distribution(x: torch.Tensor, temperature: float, dim: int) -> torch.Tensor:
    """softmax(|rFFT(x)|[1:] / tau) over frequencies, DC dropped; frequency on the last axis.

    |z| is sqrt(re^2 + im^2 + 1e-20) (no NaN gradient at z = 0); an exp argument below
    ``tdml.losses.fused.EXP_FLOOR`` = -50 is floored there: float32 exp of very negative values takes CPU's ~100x
    slower subnormal path, and the change is < 2e-22 per probability.
    """
    return spectrum(x.movedim(dim, -1), temperature)[3]


# The reference code's prediction-level term takes log(P_s + 1e-8) of the student's
# softmax; its feature-level term (LingFengGold/TimeDistill, commit 08dedd3e) is in log
# space (log_softmax on both sides). tdml reproduces both (tests/test_timedistill.py).
PRED_LOG_EPS = 1e-8
FEATURE_LOG_EPS = 0.0


def multi_period_loss(s: torch.Tensor, t: torch.Tensor, temperature: float, dim: int,
                      kl_mode: KLMode = "reference", log_eps: float = PRED_LOG_EPS) -> torch.Tensor:
    """KL(P(teacher) || P(student)) of the period distributions along ``dim``.

    ``reference`` (default): the reference code's ``F.kl_div(log P_s, P_t, reduction='mean')``
    with log P_s = log(P_s + ``log_eps``) (``log_eps`` 0: log_softmax) -- the elementwise mean,
    i.e. the KL divided by the number of frequency bins F = floor(n / 2) (48 at H = 96, 256
    on 512-wide features); the published alpha, beta were tuned for this scale.
    ``full``: the full KL of each (sample, channel) distribution (log_softmax on both sides,
    no epsilon), averaged over distributions = F x ``reference`` (up to the epsilon).

    P_t log P_t is written with the teacher's log_softmax, so a teacher-side probability that
    underflows gives 0 * finite, not the NaN gradient of xlogy at 0. One autograd node with
    the closed-form backward (``tdml.losses.fused``).
    """
    if s.shape[dim] < 2:  # a length-1 axis has no non-DC frequency
        return s.new_zeros(())
    with _float32(s):
        return PeriodKL.apply(full(s).movedim(dim, -1), full(t).movedim(dim, -1), temperature,
                              kl_mode == "full", log_eps)


def plain_multi_scale_loss(s: torch.Tensor, t: torch.Tensor, scales: int, dim: int) -> torch.Tensor:
    """``multi_scale_loss`` as plain autograd ops (the formula a reader checks; ``kernels: plain``)."""
    s, t = s.movedim(dim, -1), t.movedim(dim, -1)
    terms = [F.mse_loss(s, t)]
    for _ in range(scales):
        if s.shape[-1] < 2:
            break
        s, t = (F.avg_pool1d(x.reshape(-1, 1, x.shape[-1]), 2).reshape(*x.shape[:-1], -1) for x in (s, t))
        terms.append(F.mse_loss(s, t))
    return torch.stack(terms).mean()


def plain_multi_period_loss(s: torch.Tensor, t: torch.Tensor, temperature: float, dim: int,
                            kl_mode: KLMode = "reference", log_eps: float = PRED_LOG_EPS) -> torch.Tensor:
    """``multi_period_loss`` as plain autograd ops: log P = log_softmax(|rFFT(x)|[1:] / tau);
    ``reference`` = F.kl_div(log(P_s + eps), P_t, reduction='mean'), ``full`` = the KL per
    distribution, averaged (``kernels: plain``)."""
    if s.shape[dim] < 2:
        return s.new_zeros(())
    log_p = [F.log_softmax(torch.fft.rfft(x.movedim(dim, -1), dim=-1)[..., 1:].abs() / temperature, dim=-1)
             for x in (s, t)]
    ls, lt = log_p
    if kl_mode == "full":
        return (lt.exp() * (lt - ls)).sum(-1).mean()
    q_s = torch.log(ls.exp() + log_eps) if log_eps > 0 else ls
    return (lt.exp() * (lt - q_s)).mean()


# kernels: fused (one autograd node each, closed-form backward: tdml.losses.fused, the default:
# a step is bound by op dispatch) or plain (the formulas above through autograd; equal values
# and gradients, tests/test_timedistill.py)
KERNELS = {"fused": (multi_scale_loss, multi_period_loss), "plain": (plain_multi_scale_loss, plain_multi_period_loss)}

REGRESSORS = {
    "reference": lambda d_t, d_s, r: nn.Sequential(nn.Linear(d_t, d_s), nn.ReLU(), nn.Linear(d_s, d_s)),
    "linear": lambda d_t, d_s, r: nn.Sequential(nn.Linear(d_t, d_s)),
    "lowrank": lambda d_t, d_s, r: nn.Sequential(nn.Linear(d_t, r, bias=False), nn.Linear(r, d_s)),
}


class FeatureRegressor(nn.Module):
    """R: teacher feature width -> student feature width, applied per channel (``REGRESSORS``)."""

    def __init__(self, d_teacher: int, d_student: int, kind: RegressorKind = "reference", rank: int = 64):
        super().__init__()
        self.net = REGRESSORS[kind](d_teacher, d_student, rank)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


@LOSSES.register("timedistill")
class TimeDistillLoss(DistillationLoss):
    """Returns the four distillation terms; the caller weights them with alpha and beta.

    ``student_feature`` / ``teacher_feature`` name the features() entries to align;
    their widths come from the models' declared feature_shapes().
    """

    Config = TimeDistillConfig

    def __init__(self, cfg: TimeDistillConfig | None = None, student_feature: str = "hidden",
                 teacher_feature: str = "hidden", d_student: int = 0, d_teacher: int = 0):
        super().__init__(cfg)
        cfg = self.cfg
        self.student_feature, self.teacher_feature = student_feature, teacher_feature
        self.regressor = (FeatureRegressor(d_teacher, d_student, cfg.regressor, cfg.regressor_rank)
                          if cfg.beta > 0 else None)

    @classmethod
    def from_models(cls, cfg: TimeDistillConfig, student, teacher) -> "TimeDistillLoss":
        """Build the regressor from the declared widths of both models' distill features."""
        s_shape = student.feature_shapes()[student.distill_feature]
        t_shape = teacher.feature_shapes()[teacher.distill_feature]
        if cfg.beta > 0 and s_shape[:-1] != t_shape[:-1]:
            raise IncompatibleTeacherError(
                f"feature distillation needs per-channel features of matching leading shape: student "
                f"{student.distill_feature!r} {s_shape} vs teacher {teacher.distill_feature!r} {t_shape}; "
                f"set beta=0 to distil predictions only")
        return cls(cfg, student.distill_feature, teacher.distill_feature, s_shape[-1], t_shape[-1])

    def teacher_features(self) -> tuple[str, ...]:
        """The teacher ``features()`` entries ``forward`` reads (what a teacher cache keeps)."""
        return (self.teacher_feature,) if self.cfg.beta > 0 else ()

    def diagnostic_settings(self) -> dict[str, float]:
        return {"temperature": self.cfg.temperature, "scales": self.cfg.scales}

    def weights(self) -> dict[str, float]:
        a, b = self.cfg.alpha, self.cfg.beta
        return {"pred_scale": a, "pred_period": a, "feat_scale": b, "feat_period": b}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None) -> dict[str, torch.Tensor]:
        c = self.cfg
        scale, period = KERNELS[c.kernels]
        terms = {}
        if c.alpha > 0:
            terms["pred_scale"] = scale(student.pred, teacher.pred, c.scales, dim=1)
            terms["pred_period"] = period(student.pred, teacher.pred, c.temperature, 1, c.kl_mode)
        if c.beta > 0:
            hs = student.features[self.student_feature]
            ht = self.regressor(teacher.features[self.teacher_feature])
            terms["feat_scale"] = scale(hs, ht, c.scales, dim=-1)
            terms["feat_period"] = period(hs, ht, c.temperature, -1, c.kl_mode, FEATURE_LOG_EPS)
        return terms
