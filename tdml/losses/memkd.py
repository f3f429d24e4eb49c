"""MemKD (docs/methods.md §2.3): match how much each subsequence moves the models' memory.

Memory response of hidden states h_1..h_L to the subsequence (t, t+z]:
``m(t, z) = ‖h_{t+z} − h_t‖₂ / (‖h_t‖₂ + ε)`` -- a scalar per sample, so a 100-wide teacher
and an 8-wide student compare without an alignment layer.

- ``mem_short``: z = 1 at every t (L − 1 responses per sample).
- ``mem_long``: ``long_pairs`` random (t, z) pairs with ``min_gap <= z <= max_gap``, drawn once
  per batch and shared by its samples. z is uniform over the allowed gaps, then t uniform over
  the valid starts, so long and short-ish gaps are drawn equally often (uniform over all pairs
  would favour short gaps). The paper publishes no code; this rule is our decision.
- Each term: SmoothL1(m_student, m_teacher), mean over responses.
- h is the top layer's hidden-state sequence, or its cell-state sequence with ``state: cell``.

The pairs come from a generator seeded by ``seed`` (advanced every batch), so a run with the
same seed sees the same pairs. ``seed`` unset (None, the default) means the run's seed:
``tdml.resolve.resolve_distill`` puts ``train.seed`` there, so the run logs it; a loss built
directly with no seed uses the torch seed in force (``torch.initial_seed()``), in a copy of the
config -- the config passed in is never changed.
t indexes the model's outputs (h_1 is the first), never the zero initial state, whose norm
would make m(0, z) blow up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from tdml.config import require
from tdml.losses.base import LOSSES, ModelOutput
from tdml.losses.common import DistillLoss, LossConfig


@dataclass
class MemKDConfig(LossConfig):
    short_weight: float = 1.0
    long_weight: float = 1.0
    long_pairs: int = 32  # random (t, z) pairs per batch
    min_gap: int = 2
    max_gap: int = 0  # 0: up to L - 1
    eps: float = 1e-6  # in the response's denominator
    smooth_l1_beta: float = 1.0
    seed: int | None = None  # pair-sampling generator; None = the run's train.seed
    # the paper leaves Δh's normaliser open (issue 23): 'previous' divides by ||h_t|| (scale-free,
    # comparable across teacher and student widths), 'none' keeps the raw ||h_{t+z} - h_t||
    normalize: Literal["previous", "none"] = "previous"
    # which state is "the memory" (also left open): 'hidden' h_t, the paper's wording; 'cell' the
    # LSTM's c_t (the models' ``cell_sequence`` feature, computed only when this asks for it)
    state: Literal["hidden", "cell"] = "hidden"

    def validate(self):
        super().validate()
        require(self.short_weight >= 0, f"short_weight must be >= 0, got {self.short_weight}")
        require(self.long_weight >= 0, f"long_weight must be >= 0, got {self.long_weight}")
        require(self.long_pairs >= 1, f"long_pairs must be >= 1 (set long_weight: 0 to drop the term), "
                f"got {self.long_pairs}")
        require(self.min_gap >= 2, f"min_gap must be >= 2 (z = 1 is the short term), got {self.min_gap}")
        require(self.max_gap == 0 or self.max_gap >= self.min_gap,
                f"max_gap must be 0 (no limit) or >= min_gap = {self.min_gap}, got {self.max_gap}")
        require(self.eps > 0, f"eps must be > 0, got {self.eps}")
        require(self.smooth_l1_beta >= 0, f"smooth_l1_beta must be >= 0, got {self.smooth_l1_beta}")


def memory_response(h: torch.Tensor, start: torch.Tensor, gap: torch.Tensor, eps: float,
                    normalize: str = "previous") -> torch.Tensor:
    """m(t, z) for index tensors t = ``start``, z = ``gap`` (0-based on h's time axis) -> [B, P]."""
    h0, h1 = h[:, start], h[:, start + gap]
    change = (h1 - h0).norm(dim=-1)
    return change / (h0.norm(dim=-1) + eps) if normalize == "previous" else change


def short_responses(h: torch.Tensor, eps: float, normalize: str = "previous") -> torch.Tensor:
    """m(t, 1) for every t -> [B, L - 1]."""
    change = (h[:, 1:] - h[:, :-1]).norm(dim=-1)
    return change / (h[:, :-1].norm(dim=-1) + eps) if normalize == "previous" else change


def sample_pairs(length: int, n_pairs: int, min_gap: int, max_gap: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, z) with z uniform in [min_gap, min(max_gap, L - 1)] and t uniform in [0, L - 1 - z].

    Empty tensors when the sequence is too short for any gap >= min_gap.
    """
    hi = length - 1 if max_gap == 0 else min(max_gap, length - 1)
    if hi < min_gap:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    gap = torch.randint(min_gap, hi + 1, (n_pairs,), generator=generator)
    u = torch.rand(n_pairs, generator=generator)
    start = (u * (length - gap)).long().clamp_max(length - 1 - gap)  # uniform in [0, L-1-z]
    return start, gap


@LOSSES.register("memkd")
class MemKDLoss(DistillLoss):
    """Terms ``mem_short`` and ``mem_long`` (relative weights short_weight : long_weight)."""

    Config = MemKDConfig

    def __init__(self, cfg: MemKDConfig, *args, **kwargs):
        if cfg.seed is None:  # built outside a run's resolver: the torch seed in force
            cfg = dataclasses.replace(cfg, seed=torch.initial_seed())
        super().__init__(cfg, *args, **kwargs)
        if cfg.state == "cell":
            self.student_feature = self.teacher_feature = "cell_sequence"
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def term_weights(self):
        return {"mem_short": self.cfg.short_weight, "mem_long": self.cfg.long_weight}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None):
        c = self.cfg
        hs, ht = self.sequences(student, teacher)
        terms = {}
        if self.active("mem_short"):
            if hs.shape[1] < 2:
                terms["mem_short"] = hs.sum() * 0.0  # no z = 1 pair in a length-1 sequence
            else:
                terms["mem_short"] = F.smooth_l1_loss(short_responses(hs, c.eps, c.normalize),
                                                      short_responses(ht, c.eps, c.normalize), beta=c.smooth_l1_beta)
        if self.active("mem_long"):
            start, gap = sample_pairs(hs.shape[1], c.long_pairs, c.min_gap, c.max_gap, self.generator)
            if start.numel() == 0:
                terms["mem_long"] = hs.sum() * 0.0  # sequence shorter than min_gap + 1
            else:
                start, gap = start.to(hs.device), gap.to(hs.device)
                terms["mem_long"] = F.smooth_l1_loss(memory_response(hs, start, gap, c.eps, c.normalize),
                                                     memory_response(ht, start, gap, c.eps, c.normalize),
                                                     beta=c.smooth_l1_beta)
        return terms
