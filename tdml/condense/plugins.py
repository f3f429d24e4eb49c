"""Plug-in terms on the synthetic data (docs/methods.md §3.4–3.5).

* ``frequency_value_loss`` -- DDTime's value term: (1-a) mean|Y - P| + a mean|rFFT(Y) - rFFT(P)|
  along the horizon, P the expert's prediction on the synthetic inputs.
* ``isib`` -- inter-sample information bottleneck: p_i = softmax(z_i / tau), D_ij the symmetric
  KL, loss = mean_{i != j} exp(-D_ij); it is 1 for identical samples and falls as they differ.
* ``condtsf_update`` -- CondTSF's label interpolation Ys <- (1-b) Ys + b P, on the series.
"""

from __future__ import annotations

from typing import Callable

import torch

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


def frequency_value_loss(target: torch.Tensor, pred: torch.Tensor, alpha: float) -> torch.Tensor:
    """[n, H, C] each; alpha=0 is the temporal L1, alpha=1 the spectral L1 only."""
    temporal = (target - pred).abs().mean()
    spectral = (torch.fft.rfft(target, dim=1) - torch.fft.rfft(pred, dim=1)).abs().mean()
    return (1 - alpha) * temporal + alpha * spectral


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


@torch.no_grad()
def condtsf_update(series: torch.Tensor, pred: torch.Tensor, starts: torch.Tensor, seq_len: int,
                   beta: float) -> None:
    """In place on ``series`` [T, C]: move every label position toward the mean prediction there.

    Windows overlap, so a position predicted by several windows moves toward their mean.
    """
    H = pred.shape[1]
    idx = (starts[:, None] + seq_len + torch.arange(H, device=series.device)).reshape(-1)  # [n*H]
    total = torch.zeros_like(series).index_add_(0, idx, pred.reshape(-1, series.shape[1]))
    count = torch.zeros(series.shape[0], 1, device=series.device).index_add_(
        0, idx, torch.ones(idx.shape[0], 1, device=series.device))
    hit = count[:, 0] > 0
    series[hit] = (1 - beta) * series[hit] + beta * total[hit] / count[hit]
