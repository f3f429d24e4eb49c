"""FEDformer's frequency-enhanced blocks (Fourier version).

Both keep a fixed subset of ``modes`` Fourier frequencies (random or lowest, chosen once
at construction from a seed so a rebuilt model gets the same ones), act on them with
learned complex weights per head, and transform back. The results are written back at
the frequencies they came from (the paper's "padding" step).

Complex weights are stored as two real tensors so checkpoints stay plain float tensors.
FFTs use ``norm="ortho"`` and weights start with variance 1/E so a block roughly keeps
the scale of its input (the reference's 1/(d_in*d_out) start makes the block ~0 at first).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def select_modes(seq_len: int, modes: int, how: str, seed: int) -> list[int]:
    """Frequencies (rfft bins below seq_len // 2) a block keeps: the lowest ``modes`` or a seeded random set."""
    n = max(1, seq_len // 2)
    modes = min(modes, n)
    if how == "random":
        gen = torch.Generator().manual_seed(seed)
        return sorted(torch.randperm(n, generator=gen)[:modes].tolist())
    return list(range(modes))


class _SpectralWeights(nn.Module):
    """One complex [H, E, E, M] weight applied per kept frequency: [B,H,E,M] -> [B,H,E,M]."""

    def __init__(self, n_heads: int, head_dim: int, n_modes: int):
        super().__init__()
        std = math.sqrt(0.5 / head_dim)
        self.re = nn.Parameter(torch.randn(n_heads, head_dim, head_dim, n_modes) * std)
        self.im = nn.Parameter(torch.randn(n_heads, head_dim, head_dim, n_modes) * std)

    def forward(self, xf: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bhem,heom->bhom", xf, torch.complex(self.re, self.im))


def _back_to_time(yf: torch.Tensor, index: torch.Tensor, length: int) -> torch.Tensor:
    """Place kept frequencies [B,H,E,M] at their bins, zero elsewhere, irfft -> [B, length, H, E]."""
    B, H, E, _ = yf.shape
    full = torch.zeros(B, H, E, length // 2 + 1, dtype=yf.dtype, device=yf.device).index_copy(-1, index, yf)
    return torch.fft.irfft(full, n=length, dim=-1, norm="ortho").permute(0, 3, 1, 2)


class FourierBlock(nn.Module):
    """FEB-f: replaces self-attention; uses only the (projected) queries."""

    inputs = ("q",)

    def __init__(self, d_model: int, n_heads: int, seq_len: int, modes: int, mode_select: str, seed: int):
        super().__init__()
        idx = select_modes(seq_len, modes, mode_select, seed)
        self.register_buffer("index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.weights = _SpectralWeights(n_heads, d_model // n_heads, len(idx))

    def forward(self, q: torch.Tensor) -> torch.Tensor:  # [B, L, H, E] -> [B, L, H, E]
        L = q.shape[1]
        xf = torch.fft.rfft(q.permute(0, 2, 3, 1), dim=-1, norm="ortho")[..., self.index]
        return _back_to_time(self.weights(xf), self.index, L)


class FourierCrossAttention(nn.Module):
    """FEA-f: attention between the kept query and key frequencies; keys double as values."""

    inputs = ("q", "k")

    def __init__(self, d_model: int, n_heads: int, len_q: int, len_kv: int, modes: int, mode_select: str,
                 seed: int, activation: str = "tanh"):
        super().__init__()
        iq = select_modes(len_q, modes, mode_select, seed)
        ik = select_modes(len_kv, modes, mode_select, seed + 1)
        self.register_buffer("index_q", torch.tensor(iq, dtype=torch.long), persistent=False)
        self.register_buffer("index_kv", torch.tensor(ik, dtype=torch.long), persistent=False)
        self.weights = _SpectralWeights(n_heads, d_model // n_heads, len(iq))
        self.activation = activation
        self.scale = 1.0 / math.sqrt(d_model // n_heads)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:  # -> [B, Lq, H, E]
        Lq = q.shape[1]
        qf = torch.fft.rfft(q.permute(0, 2, 3, 1), dim=-1, norm="ortho")[..., self.index_q]  # [B,H,E,Mq]
        kf = torch.fft.rfft(k.permute(0, 2, 3, 1), dim=-1, norm="ortho")[..., self.index_kv]  # [B,H,E,Mk]
        scores = torch.einsum("bhex,bhey->bhxy", qf, kf) * self.scale
        if self.activation == "tanh":
            scores = torch.tanh(scores)
        else:  # softmax over key frequencies of the score magnitudes
            scores = torch.softmax(scores.abs(), dim=-1).to(qf.dtype)
        mixed = torch.einsum("bhxy,bhey->bhex", scores, kf)
        return _back_to_time(self.weights(mixed), self.index_q, Lq)
