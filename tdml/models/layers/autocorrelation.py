"""Autoformer's auto-correlation: period-based dependencies found with the FFT.

Series auto-correlation between queries and keys (Wiener-Khinchin: irfft(Q * conj(K)))
picks the ``factor * ln L`` most correlated delays per sample; the output is the sum of
the values rolled by each delay, weighted by the softmax of their correlations.
Delays are chosen per sample in training and inference alike (one code path); the
weighted sum of rolls is computed with one FFT correlation instead of one gather per delay.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class AutoCorrelation(nn.Module):
    inputs = ("q", "k", "v")  # projections MixingLayer must build

    def __init__(self, factor: int = 1):
        super().__init__()
        self.factor = factor

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [B, L, H, E], k/v [B, S, H, E] -> [B, L, H, E]."""
        B, L, H, E = q.shape
        S = k.shape[1]
        if L > S:  # keys/values shorter than queries: zero-fill, as in the paper
            pad = q.new_zeros(B, L - S, H, E)
            k, v = torch.cat([k, pad], dim=1), torch.cat([v, pad], dim=1)
        else:
            k, v = k[:, :L], v[:, :L]
        qf = torch.fft.rfft(q.permute(0, 2, 3, 1), dim=-1)
        kf = torch.fft.rfft(k.permute(0, 2, 3, 1), dim=-1)
        corr = torch.fft.irfft(qf * torch.conj(kf), n=L, dim=-1)  # [B, H, E, L], one value per delay
        return self._aggregate(v.permute(0, 2, 3, 1), corr).permute(0, 3, 1, 2)

    def _aggregate(self, v: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        """sum_i w_i * roll(v, -delay_i), done as one circular cross-correlation in frequency space."""
        B, H, E, L = v.shape
        top_k = max(1, min(L, int(self.factor * math.log(L))))
        weights, delays = torch.topk(corr.mean(dim=(1, 2)), top_k, dim=-1)  # [B, k]
        weights = torch.softmax(weights, dim=-1)
        # A sparse kernel with weight w_i at delay_i: correlating v with it reads v[t + delay_i]
        # for every i at once, far cheaper than k gathers over [B, H, E, L].
        kernel = torch.zeros(B, L, dtype=v.dtype, device=v.device).scatter_add(1, delays, weights)
        spectrum = torch.fft.rfft(v, dim=-1) * torch.conj(torch.fft.rfft(kernel, dim=-1))[:, None, None, :]
        return torch.fft.irfft(spectrum, n=L, dim=-1)
