"""Plug-in terms on the synthetic data (docs/methods.md §3.4–3.5).

* ``frequency_value_loss`` -- DDTime's value term: (1-a) d(Y, P) + a mean|rFFT(Y) - rFFT(P)|
  along the horizon, P the expert's prediction on the synthetic inputs, d mean |.| or mean (.)^2;
  Y the synthetic labels or the unrolled student's forecast (``value_pair``).
* ``isib`` -- inter-sample information bottleneck: p_i = softmax(z_i / tau), D_ij the symmetric
  KL, loss = mean_{i != j} exp(-D_ij); it is 1 for identical samples and falls as they differ.
* CondTSF's label interpolation Ys <- (1-b) Ys + b P is a method of the synthetic set's layout
  (``tdml.condensation.synthetic``).

``DDTimeTerms`` is the first two as a ``tdml.losses.base.Loss`` (Config beside it, named
terms ``value`` / ``isib``, ``weights()``), so the condenser adds them to the matching term
with the same ``weighted_sum`` as every distillation loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from tdml.config import require
from tdml.losses.base import Loss
from tdml.registry import Registry

# z_i for the ISIB: [n, ...] -> [n, D]. Decision (docs/condense.md): 'window' by default --
# the values the student is trained on; 'spectrum' compares shapes independent of phase.
REPRESENTATIONS: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("ISIB representation")


@REPRESENTATIONS.register("window")
def _window(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, y], dim=1).reshape(x.shape[0], -1)


@REPRESENTATIONS.register("spectrum")
def _spectrum(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.fft.rfft(torch.cat([x, y], dim=1), dim=1).abs().reshape(x.shape[0], -1)


# The temporal part's distance: the summary says "MSE between teacher/student predictions";
# L1 matches the spectral part's L1 (and CondTSF's code).
TEMPORAL: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"l1": lambda d: d.abs().mean(),
                                                               "mse": lambda d: d.pow(2).mean()}
# What the value term aligns with the expert's forecast f(theta_T; X) (the summary: "teacher/student
# predictions on synthetic inputs"): the synthetic labels Y (CondTSF's value term), or the forecast
# of the student unrolled on the synthetic set, f(theta_K; X).
VALUE_PAIRS = ("labels", "student")
# Whether the expert's forecast is a detached target (gradients reach only the labels, or the
# student's forecast), or differentiable in X too ("inputs").
VALUE_GRADS = ("labels", "inputs")


def frequency_value_loss(target: torch.Tensor, pred: torch.Tensor, alpha: float,
                         temporal: str = "l1") -> torch.Tensor:
    """[n, H, C] each; alpha=0 is the temporal term only, alpha=1 the spectral L1 only."""
    spectral = (torch.fft.rfft(target, dim=1) - torch.fft.rfft(pred, dim=1)).abs().mean()
    return (1 - alpha) * TEMPORAL[temporal](target - pred) + alpha * spectral


def pairwise_sym_kl(z: torch.Tensor, tau: float) -> torch.Tensor:
    """[n, D] -> [n, n] symmetric KL between softmax(z_i / tau) and softmax(z_j / tau)."""
    logp = torch.log_softmax(z / tau, dim=-1)
    p = logp.exp()
    # KL(p_i || p_j) = sum p_i log p_i - sum p_i log p_j
    neg_entropy = (p * logp).sum(-1)  # [n]
    cross = p @ logp.T  # [n, n]: sum_k p_i,k log p_j,k
    kl = neg_entropy[:, None] - cross
    return kl + kl.T


def isib(x: torch.Tensor, y: torch.Tensor, tau: float, representation: str = "window") -> torch.Tensor:
    """mean over i != j of exp(-D_ij); in (0, 1], lower = more diverse synthetic windows."""
    z = REPRESENTATIONS.get(representation)(x, y)
    n = z.shape[0]
    d = pairwise_sym_kl(z, tau)
    off = ~torch.eye(n, dtype=torch.bool, device=z.device)
    return torch.exp(-d[off]).mean()


@dataclass
class DDTimeConfig:
    """DDTime plug-ins: frequency value loss (alpha, weight) and inter-sample IB (lam, tau, representation)."""

    freq: bool = False
    alpha: float = 0.8  # share of the rFFT term in the value loss
    value_weight: float = 1.0  # weight of the value loss in the synthetic-data objective
    isib: bool = False
    lam: float = 0.6  # lambda of the ISIB regulariser
    tau: float = 1.0  # softmax temperature of p_i = softmax(z_i / tau)
    representation: str = "window"  # z_i: 'window' (x||y values) or 'spectrum' (|rFFT| per channel)
    # the readings of the value term where the summary is ambiguous (docs/methods.md §3.4)
    value_pair: str = "labels"  # labels: Y vs f(theta_T; X); student: f(theta_K; X) vs f(theta_T; X)
    temporal: str = "l1"  # l1 | mse
    value_grad: str = "labels"  # labels: f(theta_T; X) detached; inputs: it moves X as well

    def validate(self):
        require(0 <= self.alpha <= 1, f"ddtime.alpha must be in [0, 1], got {self.alpha}")
        require(self.value_weight >= 0 and self.lam >= 0, "ddtime.value_weight and ddtime.lam must be >= 0")
        require(self.tau > 0, f"ddtime.tau must be > 0, got {self.tau}")
        require(self.representation in REPRESENTATIONS,
                f"ddtime.representation {self.representation!r} unknown; valid: {', '.join(REPRESENTATIONS.names())}")
        for name, value, valid in (("value_pair", self.value_pair, VALUE_PAIRS), ("temporal", self.temporal, TEMPORAL),
                                   ("value_grad", self.value_grad, VALUE_GRADS)):
            require(value in valid, f"ddtime.{name} {value!r} unknown; valid: {', '.join(valid)}")


class DDTimeTerms(Loss):
    """``value`` (weight ``value_weight`` when ``freq``) and ``isib`` (weight ``lam`` when ``isib``)
    of synthetic windows x [n, L, C], y [n, H, C] against the expert's forecast on x."""

    Config = DDTimeConfig

    def weights(self) -> dict[str, float]:
        c = self.cfg
        return {"value": c.value_weight if c.freq else 0.0, "isib": c.lam if c.isib else 0.0}

    def forward(self, x: torch.Tensor, y: torch.Tensor, expert_pred: torch.Tensor | None,
                student_pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``expert_pred`` f(theta_T; x); ``student_pred`` f(theta_K; x), needed for value_pair=student."""
        c, terms = self.cfg, {}
        if c.freq:
            aligned = y if c.value_pair == "labels" else student_pred
            terms["value"] = frequency_value_loss(aligned, expert_pred, c.alpha, c.temporal)
        if c.isib:
            terms["isib"] = isib(x, y, c.tau, c.representation)
        return terms
