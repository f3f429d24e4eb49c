"""MICN (Wang et al., ICLR 2023): multi-scale isometric convolutions for local + global context.

The lookback is split (mean of moving averages with one odd kernel per scale) into a trend,
forecast by a Linear(L -> H) along time (started as the lookback average), and a seasonal
part. The seasonal decoder input is the last ``label_len`` seasonal steps (default the
whole lookback, as in the paper: Concat(X_s, X_zero) has I + O steps) followed by H zeros,
embedded per step (width-3 conv of all channels + sinusoidal position + Linear of marks
x_mark[-label_len:] ++ y_mark). Each MIC layer runs one branch per ``conv_kernel`` k:
decompose, down-sample with a stride-k conv (local features), an isometric conv whose
kernel spans the whole down-sampled sequence over a zero-padded copy (global correlations,
causal), up-sample with a transposed conv; tanh activations and LayerNorms around residuals. Branches are merged by a Conv2d over the
scale axis, then a feed-forward (width ``d_ff``). A Linear(d_model -> C) reads the last H
steps; the forecast is that seasonal part + the trend forecast.

Deviations: the trend Linear starts at 1/L (an average) and the feed-forward has a GELU
between its two layers.

Without dates (n_marks = 0 or x_mark/y_mark None) the embedding is values + position only.
Input normalisation defaults to none, as in the paper.

features(): ``projection`` [B, C, H * feature_groups], per-channel terms of the final
seasonal Linear over the forecast steps (see layers/heads.ChannelProjection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.decoder_input import decoder_marks, last_steps, resolve_label_len
from tdml.models.layers.decomposition import MultiScaleDecomposition, SeriesDecomposition
from tdml.models.layers.embedding import DataEmbedding
from tdml.models.layers.heads import ChannelProjection
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class MICNParams:
    d_model: int = 512
    d_layers: int = 1
    d_ff: int = 2048
    conv_kernel: tuple[int, ...] = (12, 16)
    dropout: float = 0.05
    label_len: int | None = None  # None = seq_len (the paper); fewer steps make the model cheaper
    norm: str = "none"
    use_time_features: bool = True
    feature_groups: int = 16  # hidden-unit groups in the distill feature (must divide d_model)

    def validate(self):
        require(self.d_model >= 1 and self.d_ff >= 1 and self.d_layers >= 1, "d_model, d_ff, d_layers must be >= 1")
        require(len(self.conv_kernel) >= 1 and all(k >= 1 for k in self.conv_kernel),
                f"conv_kernel must be a non-empty list of positive sizes, got {self.conv_kernel}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.feature_groups >= 1 and self.d_model % self.feature_groups == 0,
                f"feature_groups ({self.feature_groups}) must divide d_model ({self.d_model})")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


def _odd(k: int) -> int:
    return k + 1 if k % 2 == 0 else k


class MICBranch(nn.Module):
    """One scale: decompose -> stride-k conv -> isometric conv -> transposed conv back to T steps."""

    def __init__(self, d_model: int, kernel: int, length: int, dropout: float):
        super().__init__()
        self.decomp = SeriesDecomposition(_odd(kernel))
        self.down = nn.Conv1d(d_model, d_model, kernel, stride=kernel, padding=kernel // 2)
        n = (length + 2 * (kernel // 2) - kernel) // kernel + 1  # down-sampled length
        self.iso = nn.Conv1d(d_model, d_model, n)  # kernel = n: every output sees the whole prefix
        self.up = nn.ConvTranspose1d(d_model, d_model, kernel, stride=kernel)
        self.norm_local, self.norm_out = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d]
        B, T, d = x.shape
        s, _ = self.decomp(x)
        h = self.drop(torch.tanh(self.down(s.transpose(1, 2))))  # [B, d, n]
        n = h.shape[-1]
        g = self.drop(torch.tanh(self.iso(torch.cat([h.new_zeros(B, d, n - 1), h], dim=-1))))
        h = self.norm_local((g + h).transpose(1, 2)).transpose(1, 2)
        u = self.drop(torch.tanh(self.up(h)))[..., :T]
        return self.norm_out(u.transpose(1, 2) + s)


class MICLayer(nn.Module):
    def __init__(self, d_model: int, d_ff: int, kernels: tuple[int, ...], length: int, dropout: float):
        super().__init__()
        self.branches = nn.ModuleList(MICBranch(d_model, k, length, dropout) for k in kernels)
        self.merge = nn.Conv2d(d_model, d_model, kernel_size=(len(kernels), 1))
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d]
        stacked = torch.stack([b(x) for b in self.branches], dim=1)  # [B, nb, T, d]
        merged = self.merge(stacked.permute(0, 3, 1, 2)).squeeze(2).transpose(1, 2)  # [B, T, d]
        return self.norm2(merged + self.ff(self.norm1(merged)))


@register_model("micn")
class MICN(Forecaster):
    Params = MICNParams
    uses_time_features = True
    distill_feature = "projection"

    def __init__(self, dims: Dims, params: MICNParams):
        super().__init__(dims, params)
        p, C, L, H = params, dims.n_channels, dims.seq_len, dims.pred_len
        self.label_len = resolve_label_len(L if p.label_len is None else p.label_len, L)
        n_marks = dims.n_marks if p.use_time_features else 0
        self.normalizer = make_normalizer(p.norm, C)
        self.decomp = MultiScaleDecomposition([_odd(k) for k in p.conv_kernel])
        self.trend = nn.Linear(L, H)
        nn.init.constant_(self.trend.weight, 1.0 / L)
        nn.init.zeros_(self.trend.bias)
        self.embed = DataEmbedding(C, p.d_model, n_marks, p.dropout, position=True)
        self.layers = nn.Sequential(*(MICLayer(p.d_model, p.d_ff, tuple(p.conv_kernel), self.label_len + H, p.dropout)
                                      for _ in range(p.d_layers)))
        self.head = ChannelProjection(p.d_model, C, p.feature_groups)

    def forward_features(self, x, x_mark=None, y_mark=None):
        B, _, C = x.shape
        H, n = self.dims.pred_len, self.label_len
        z, state = self.normalizer.normalize(x)
        if not self.params.use_time_features:
            x_mark = y_mark = None
        seasonal, trend = self.decomp(z)
        trend_out = self.trend(trend.transpose(1, 2)).transpose(1, 2)  # [B, H, C]
        dec = torch.cat([last_steps(seasonal, n), z.new_zeros(B, H, C)], dim=1)
        h = self.layers(self.embed(dec, decoder_marks(x_mark, y_mark, n)))[:, -H:]
        y = trend_out + self.head(h)
        return self.normalizer.denormalize(y, state), {"projection": self.head.contributions(h)}

    def feature_shapes(self):
        return {"projection": (self.dims.n_channels, self.dims.pred_len * self.params.feature_groups)}
