"""The decomposition Transformer skeleton shared by Autoformer and FEDformer.

Every sub-layer is followed by a moving-average decomposition that keeps the seasonal
part; decoder layers accumulate the trend parts, projected to the output channels.
The token mixer (auto-correlation, Fourier block, ...) is pluggable through MixingLayer.
"""

from __future__ import annotations

import torch
from torch import nn

from tdml.models.layers.decomposition import SeasonalLayerNorm, SeriesDecomposition


class MixingLayer(nn.Module):
    """Linear projections into heads for the inputs the mixer reads, the mixer, an output Linear."""

    def __init__(self, mixer: nn.Module, d_model: int, n_heads: int):
        super().__init__()
        self.mixer, self.n_heads = mixer, n_heads
        self.proj = nn.ModuleDict({name: nn.Linear(d_model, d_model) for name in mixer.inputs})
        self.out = nn.Linear(d_model, d_model)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B = q.shape[0]
        given = {"q": q, "k": k, "v": v}
        heads = {n: self.proj[n](given[n]).view(B, given[n].shape[1], self.n_heads, -1) for n in self.proj}
        y = self.mixer(**heads)
        return self.out(y.reshape(B, y.shape[1], -1))


def _feed_forward(d_model: int, d_ff: int, dropout: float, activation: str) -> nn.Sequential:
    # position-wise (the papers' kernel-1 convolutions), without biases as in Autoformer
    return nn.Sequential(nn.Linear(d_model, d_ff, bias=False), nn.GELU() if activation == "gelu" else nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(d_ff, d_model, bias=False), nn.Dropout(dropout))


class DecompEncoderLayer(nn.Module):
    def __init__(self, mixer: MixingLayer, d_model: int, d_ff: int, moving_avg: int, dropout: float,
                 activation: str = "gelu"):
        super().__init__()
        self.mixer = mixer
        self.ff = _feed_forward(d_model, d_ff, dropout, activation)
        self.decomp1, self.decomp2 = SeriesDecomposition(moving_avg), SeriesDecomposition(moving_avg)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.decomp1(x + self.drop(self.mixer(x, x, x)))
        x, _ = self.decomp2(x + self.ff(x))
        return x


class DecompEncoder(nn.Module):
    def __init__(self, layers: list[DecompEncoderLayer], d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = SeasonalLayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class DecompDecoderLayer(nn.Module):
    """Self-mixing, cross-mixing with the encoder output, FFN; returns (seasonal, trend [B, T, C])."""

    def __init__(self, self_mixer: MixingLayer, cross_mixer: MixingLayer, d_model: int, d_ff: int, c_out: int,
                 moving_avg: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        self.self_mixer, self.cross_mixer = self_mixer, cross_mixer
        self.ff = _feed_forward(d_model, d_ff, dropout, activation)
        self.decomps = nn.ModuleList(SeriesDecomposition(moving_avg) for _ in range(3))
        self.trend_proj = nn.Conv1d(d_model, c_out, 3, padding=1, padding_mode="circular", bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cross: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, t1 = self.decomps[0](x + self.drop(self.self_mixer(x, x, x)))
        x, t2 = self.decomps[1](x + self.drop(self.cross_mixer(x, cross, cross)))
        x, t3 = self.decomps[2](x + self.ff(x))
        trend = self.trend_proj((t1 + t2 + t3).transpose(1, 2)).transpose(1, 2)
        return x, trend


class DecompDecoder(nn.Module):
    """Returns the normalised seasonal hidden state [B, T, d] and the accumulated trend [B, T, C]."""

    def __init__(self, layers: list[DecompDecoderLayer], d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = SeasonalLayerNorm(d_model)

    def forward(self, x: torch.Tensor, cross: torch.Tensor, trend: torch.Tensor):
        for layer in self.layers:
            x, t = layer(x, cross)
            trend = trend + t
        return self.norm(x), trend
