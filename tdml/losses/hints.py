"""Feature-level baselines on the hidden-state sequence: FitNet, RKD and AT.

- FitNet (Romero et al. 2015): ``fitnet`` = MSE(R(h_s), h_t), R = Linear(d_student -> d_teacher)
  per time step, trained with the student. Direction: the student is mapped up to the
  teacher's width, as in FitNets. The teacher side is then a fixed target, so the loss can
  only fall by the student carrying the teacher's information; with R on the teacher side
  (teacher -> student) R and the student could both shrink towards zero instead.
- RKD (Park et al. 2019) on the last hidden state (the final step of the sequence):
  ``rkd_distance`` (pairwise distances, each divided by their mean over the batch) and
  ``rkd_angle`` (cosines of the angles of every triplet), both SmoothL1; relative weights
  1 : 2 as the paper's 25 : 50. Invariant to scale, translation and rotation of either
  embedding, so widths may differ.
- AT (Zagoruyko & Komodakis 2017) over time steps: ``a_t = mean_d |h_{t,d}|^p`` (the energy of
  step t), L2-normalised over t, per sample; ``at`` = mean_b ‖a_s − a_t‖²₂, in [0, 2].
  Invariant to the scale and width of either sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tdml.config import require
from tdml.losses.base import LOSSES, ModelOutput
from tdml.losses.common import DistillLoss, LossConfig, learned_projection


@LOSSES.register("fitnet")
class FitNetLoss(DistillLoss):
    Config = LossConfig

    def __init__(self, cfg: LossConfig, *args, **kwargs):
        super().__init__(cfg, *args, **kwargs)
        self.regressor = learned_projection(self.d_student, self.d_teacher, "fitnet", always=True)

    def term_weights(self):
        return {"fitnet": 1.0}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None):
        hs, ht = self.sequences(student, teacher)
        return {"fitnet": F.mse_loss(self.regressor(hs), ht)}


@dataclass
class RKDConfig(LossConfig):
    distance_weight: float = 1.0
    angle_weight: float = 2.0
    eps: float = 1e-12

    def validate(self):
        super().validate()
        require(self.distance_weight >= 0, f"distance_weight must be >= 0, got {self.distance_weight}")
        require(self.angle_weight >= 0, f"angle_weight must be >= 0, got {self.angle_weight}")
        require(self.eps > 0, f"eps must be > 0, got {self.eps}")


def normalised_distances(e: torch.Tensor, eps: float) -> torch.Tensor:
    """Pairwise Euclidean distances [B, B] divided by their mean over pairs i != j."""
    b = e.shape[0]
    sq = (e.unsqueeze(0) - e.unsqueeze(1)).pow(2).sum(-1)
    d = (sq + eps).sqrt() * (1 - torch.eye(b, device=e.device, dtype=e.dtype))  # eps: finite grad at 0
    return d / (d.sum() / (b * (b - 1))).clamp_min(eps)


def triplet_angles(e: torch.Tensor, eps: float) -> torch.Tensor:
    """cos of the angle at vertex j between i and k: [B, B, B] indexed [j, i, k]."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=-1, eps=eps)  # [j, i] = e_i - e_j
    return torch.bmm(diff, diff.transpose(1, 2))


@LOSSES.register("rkd")
class RKDLoss(DistillLoss):
    Config = RKDConfig

    def term_weights(self):
        return {"rkd_distance": self.cfg.distance_weight, "rkd_angle": self.cfg.angle_weight}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None):
        hs, ht = self.sequences(student, teacher)
        es, et = hs[:, -1], ht[:, -1]
        eps, terms = self.cfg.eps, {}
        if self.active("rkd_distance"):
            terms["rkd_distance"] = (F.smooth_l1_loss(normalised_distances(es, eps), normalised_distances(et, eps))
                                     if es.shape[0] >= 2 else es.sum() * 0.0)  # one sample: no pair
        if self.active("rkd_angle"):
            terms["rkd_angle"] = (F.smooth_l1_loss(triplet_angles(es, eps), triplet_angles(et, eps))
                                  if es.shape[0] >= 3 else es.sum() * 0.0)  # fewer than 3: no triplet
        return terms


@dataclass
class ATConfig(LossConfig):
    p: float = 2.0  # exponent of the per-step energy

    def validate(self):
        super().validate()
        require(self.p > 0, f"p must be > 0, got {self.p}")


def temporal_attention(h: torch.Tensor, p: float) -> torch.Tensor:
    """[B, L, d] -> [B, L]: mean_d |h|^p per step, unit L2 norm over steps."""
    return F.normalize(h.abs().pow(p).mean(-1), p=2, dim=-1)


@LOSSES.register("at")
class ATLoss(DistillLoss):
    Config = ATConfig

    def term_weights(self):
        return {"at": 1.0}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None):
        hs, ht = self.sequences(student, teacher)
        diff = temporal_attention(hs, self.cfg.p) - temporal_attention(ht, self.cfg.p)
        return {"at": diff.pow(2).sum(-1).mean()}
