"""Logit-level distillation: KD (Hinton et al. 2015) and DKD (Zhao et al. 2022).

Both compare temperature-softened class distributions of the logits in ``ModelOutput.pred``
and scale by T² so their gradients keep the magnitude of a T = 1 loss. KLs are true KLs per
sample (summed over classes), averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tdml.config import require
from tdml.losses.base import LOSSES, ModelOutput
from tdml.losses.common import DistillLoss, LossConfig


def kl_from_log_probs(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row from log-probabilities; exact zeros of p contribute nothing."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@dataclass
class KDConfig(LossConfig):
    temperature: float = 4.0

    def validate(self):
        super().validate()
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")


@LOSSES.register("kd")
class KDLoss(DistillLoss):
    """``kd`` = T² · mean_b KL(softmax(z_t/T) || softmax(z_s/T))."""

    Config = KDConfig

    def term_weights(self):
        return {"kd": 1.0}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None):
        t = self.cfg.temperature
        log_ps = torch.log_softmax(student.pred / t, -1)
        log_pt = torch.log_softmax(teacher.pred.detach() / t, -1)
        return {"kd": kl_from_log_probs(log_pt, log_ps).mean() * t * t}


@dataclass
class DKDConfig(LossConfig):
    alpha: float = 1.0  # weight of the target-class term (TCKD)
    beta: float = 8.0  # weight of the non-target term (NCKD)
    temperature: float = 4.0

    def validate(self):
        super().validate()
        require(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        require(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")


def _binary_log_probs(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log [p(target), p(not target)] from logits, computed with logsumexp for stability."""
    total = torch.logsumexp(z, -1)
    tgt = (z * mask).sum(-1)  # exactly the target logit
    rest = torch.logsumexp(z.masked_fill(mask, float("-inf")), -1)
    return torch.stack([tgt - total, rest - total], -1)


def _nontarget_log_probs(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log-softmax over the K-1 non-target classes (the target column removed)."""
    b, k = z.shape
    return torch.log_softmax(z[~mask].view(b, k - 1), -1)


@LOSSES.register("dkd")
class DKDLoss(DistillLoss):
    """``dkd_target`` (TCKD: KL of the binary target / rest split) and ``dkd_nontarget``
    (NCKD: KL among the non-target classes), each · T², weighted alpha and beta.

    Identity used by the tests: KD = TCKD + (1 − p_t(target)) · NCKD.
    DKD's published linear warm-up of the loss weight is a trainer schedule, not part of this.
    """

    Config = DKDConfig

    def term_weights(self):
        return {"dkd_target": self.cfg.alpha, "dkd_nontarget": self.cfg.beta}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None):
        if target is None:
            raise ValueError("DKD needs the class labels (target) to split target and non-target classes")
        t = self.cfg.temperature
        zs, zt = student.pred / t, teacher.pred.detach() / t
        mask = torch.zeros_like(zs, dtype=torch.bool).scatter_(1, target.long().view(-1, 1), True)
        terms = {}
        if self.active("dkd_target"):
            kl = kl_from_log_probs(_binary_log_probs(zt, mask), _binary_log_probs(zs, mask))
            terms["dkd_target"] = kl.mean() * t * t
        if self.active("dkd_nontarget"):
            kl = kl_from_log_probs(_nontarget_log_probs(zt, mask), _nontarget_log_probs(zs, mask))
            terms["dkd_nontarget"] = kl.mean() * t * t
        return terms
