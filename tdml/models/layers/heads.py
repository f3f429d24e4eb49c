"""Output heads shared by the channel-mixing forecasters."""

from __future__ import annotations

import torch
from torch import nn


class ChannelProjection(nn.Module):
    """Linear(d_model -> C) over time tokens whose per-channel inputs are the distill feature.

    Channel-mixing models (Autoformer, FEDformer, MICN, TimesNet) keep one hidden vector per
    time step, shared by all channels. Their per-channel representation is what each channel
    reads from it: ``h[t, k] * W[c, k]``, summed within ``groups`` blocks of hidden units, so
    ``contributions(h)`` is [B, C, T * groups] and summing it over the groups gives the
    forecast minus the bias. ``groups = d_model`` keeps every unit; fewer groups make the
    feature (and the distiller's regressor) smaller.
    """

    def __init__(self, d_model: int, n_channels: int, groups: int):
        super().__init__()
        self.linear = nn.Linear(d_model, n_channels)
        self.groups = groups

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B, T, C]
        return self.linear(h)

    def contributions(self, h: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B, C, T * groups]
        B, T, d = h.shape
        g = self.groups
        w = self.linear.weight.view(-1, g, d // g)
        parts = torch.einsum("btgk,cgk->bctg", h.reshape(B, T, g, d // g), w)
        return parts.reshape(B, w.shape[0], T * g)
