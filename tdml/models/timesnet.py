"""TimesNet (Wu et al., ICLR 2023): 1-D series folded into 2-D by their dominant periods.

The normalised lookback is embedded per time step (width-3 conv of all channels +
sinusoidal position + Linear of the calendar marks), stretched along time to L + H by a
Linear, and passed through TimesBlocks: the FFT amplitude (averaged over batch and
features) picks the ``top_k`` frequencies f; for each period p = T // f the sequence is
folded into a [T/p, p] image, processed by two Inception blocks (d_model -> d_ff -> d_model,
GELU between), unfolded; the k results are averaged with softmax weights from each sample's
amplitudes, plus a residual, then LayerNorm. A Linear(d_model -> C) reads every step; the
last H steps are the forecast.

Without dates (n_marks = 0 or x_mark None) the embedding is values + position only.

features(): ``projection`` [B, C, H * feature_groups], the per-channel terms of the final
Linear over the forecast steps (see layers/heads.ChannelProjection): with the reference
d_model = 16 and feature_groups = 16 that is every hidden unit, 96 * 16 = 1,536 wide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.embedding import DataEmbedding
from tdml.models.layers.heads import ChannelProjection
from tdml.models.layers.inception import InceptionBlock
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class TimesNetParams:
    d_model: int = 16
    d_ff: int = 32
    e_layers: int = 2
    top_k: int = 5
    num_kernels: int = 6
    dropout: float = 0.1
    norm: str = "standard"
    use_time_features: bool = True
    feature_groups: int = 16  # hidden-unit groups in the distill feature (must divide d_model)

    def validate(self):
        require(self.d_model >= 1 and self.d_ff >= 1 and self.e_layers >= 1, "d_model, d_ff, e_layers must be >= 1")
        require(self.top_k >= 1 and self.num_kernels >= 1, "top_k and num_kernels must be >= 1")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.feature_groups >= 1 and self.d_model % self.feature_groups == 0,
                f"feature_groups ({self.feature_groups}) must divide d_model ({self.d_model})")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


class TimesBlock(nn.Module):
    def __init__(self, d_model: int, d_ff: int, top_k: int, num_kernels: int):
        super().__init__()
        self.top_k = top_k
        self.conv = nn.Sequential(InceptionBlock(d_model, d_ff, num_kernels), nn.GELU(),
                                  InceptionBlock(d_ff, d_model, num_kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d]
        B, T, d = x.shape
        amp = torch.fft.rfft(x, dim=1).abs()  # [B, T//2+1, d]
        k = min(self.top_k, amp.shape[1] - 1) or 1
        strength = amp.mean(dim=(0, 2)).detach()
        strength[0] = 0  # the mean is not a period
        freqs = torch.topk(strength, k).indices.clamp(min=1)
        sample_weights = torch.softmax(amp.mean(-1)[:, freqs], dim=-1)  # [B, k]
        out = torch.zeros_like(x)
        for j, f in enumerate(freqs.tolist()):  # periods decide shapes, so they are Python ints
            period = T // f
            rows = -(-T // period)
            folded = torch.cat([x, x.new_zeros(B, rows * period - T, d)], dim=1)
            folded = folded.reshape(B, rows, period, d).permute(0, 3, 1, 2)  # [B, d, rows, period]
            y = self.conv(folded).permute(0, 2, 3, 1).reshape(B, rows * period, d)[:, :T]
            out = out + y * sample_weights[:, j, None, None]
        return out + x


@register_model("timesnet")
class TimesNet(Forecaster):
    Params = TimesNetParams
    uses_time_features = True
    distill_feature = "projection"

    def __init__(self, dims: Dims, params: TimesNetParams):
        super().__init__(dims, params)
        p = params
        self.normalizer = make_normalizer(p.norm, dims.n_channels)
        n_marks = dims.n_marks if p.use_time_features else 0
        self.embed = DataEmbedding(dims.n_channels, p.d_model, n_marks, p.dropout, position=True)
        self.stretch = nn.Linear(dims.seq_len, dims.seq_len + dims.pred_len)
        self.blocks = nn.ModuleList(TimesBlock(p.d_model, p.d_ff, p.top_k, p.num_kernels) for _ in range(p.e_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(p.d_model) for _ in range(p.e_layers))
        self.head = ChannelProjection(p.d_model, dims.n_channels, p.feature_groups)

    def forward_features(self, x, x_mark=None, y_mark=None):
        z, state = self.normalizer.normalize(x)
        marks = x_mark if self.params.use_time_features else None
        h = self.stretch(self.embed(z, marks).transpose(1, 2)).transpose(1, 2)  # [B, L+H, d]
        for block, norm in zip(self.blocks, self.norms):
            h = norm(block(h))
        h = h[:, -self.dims.pred_len:]
        y = self.head(h)
        return self.normalizer.denormalize(y, state), {"projection": self.head.contributions(h)}

    def feature_shapes(self):
        return {"projection": (self.dims.n_channels, self.dims.pred_len * self.params.feature_groups)}
