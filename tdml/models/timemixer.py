"""TimeMixer (Wang et al., ICLR 2024): decomposable multi-scale mixing, channel-independent.

The (normalised) lookback is average-pooled ``down_sampling_layers`` times by
``down_sampling_window`` into scales of lengths T_0 = L, T_i = T_{i-1} // window. Every
channel becomes its own sequence, embedded per step (width-3 conv of the value + Linear of
the calendar marks, no positional code). Past-Decomposable-Mixing blocks split each scale
into seasonal and trend parts (moving average); seasonal parts are mixed bottom-up
(fine -> coarse, Linear along time), trend parts top-down (coarse -> fine); a feed-forward
maps their sum back onto the residual stream. Future-Multipredictor-Mixing maps every scale
to the horizon with its own Linear(T_i -> H) and sums them; one Linear(d_model -> 1) shared
by channels reads the result (summing before this linear read-out instead of after it is
the same function with one bias instead of one per scale).

Deviations: the input is normalised once before pooling (the reference normalises each
scale); only the channel-independent mode of the reference ETTh1 setting is implemented.

Without dates (n_marks = 0 or x_mark None) the embedding is the value convolution alone.

features(): ``decoder`` [B, C, H * d_model], each channel's summed multi-predictor output
before the read-out Linear: 96 * 16 = 1,536 wide at the reference sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.decomposition import SeriesDecomposition
from tdml.models.layers.embedding import DataEmbedding
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class TimeMixerParams:
    d_model: int = 16
    d_ff: int = 32
    e_layers: int = 2
    down_sampling_layers: int = 3
    down_sampling_window: int = 2
    moving_avg: int = 25
    dropout: float = 0.1
    norm: str = "standard"
    use_time_features: bool = True

    def validate(self):
        require(self.d_model >= 1 and self.d_ff >= 1 and self.e_layers >= 1, "d_model, d_ff, e_layers must be >= 1")
        require(self.down_sampling_layers >= 0, "down_sampling_layers must be >= 0")
        require(self.down_sampling_window >= 2, "down_sampling_window must be >= 2")
        require(self.moving_avg >= 1, "moving_avg must be >= 1")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


def _time_mlp(t_in: int, t_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(t_in, t_out), nn.GELU(), nn.Linear(t_out, t_out))


class PastDecomposableMixing(nn.Module):
    def __init__(self, lengths: list[int], d_model: int, d_ff: int, moving_avg: int, dropout: float):
        super().__init__()
        self.decomp = SeriesDecomposition(moving_avg)
        self.down = nn.ModuleList(_time_mlp(lengths[i], lengths[i + 1]) for i in range(len(lengths) - 1))
        self.up = nn.ModuleList(_time_mlp(lengths[i + 1], lengths[i]) for i in range(len(lengths) - 1))
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:  # each [N, T_i, d]
        parts = [self.decomp(x) for x in xs]
        season = [s.transpose(1, 2) for s, _ in parts]  # mixing runs along time: [N, d, T_i]
        trend = [t.transpose(1, 2) for _, t in parts]
        for i, layer in enumerate(self.down):  # fine -> coarse
            season[i + 1] = season[i + 1] + layer(season[i])
        for i in reversed(range(len(self.up))):  # coarse -> fine
            trend[i] = trend[i] + self.up[i](trend[i + 1])
        return [x + self.ff((s + t).transpose(1, 2)) for x, s, t in zip(xs, season, trend)]


@register_model("timemixer")
class TimeMixer(Forecaster):
    Params = TimeMixerParams
    uses_time_features = True
    distill_feature = "decoder"

    def __init__(self, dims: Dims, params: TimeMixerParams):
        super().__init__(dims, params)
        p = params
        self.lengths = [dims.seq_len]
        for _ in range(p.down_sampling_layers):
            self.lengths.append(self.lengths[-1] // p.down_sampling_window)
        require(self.lengths[-1] >= 1, f"seq_len {dims.seq_len} too short for {p.down_sampling_layers} "
                                       f"down-samplings by {p.down_sampling_window}")
        self.normalizer = make_normalizer(p.norm, dims.n_channels)
        self.pool = nn.AvgPool1d(p.down_sampling_window)
        n_marks = dims.n_marks if p.use_time_features else 0
        self.embed = DataEmbedding(1, p.d_model, n_marks, p.dropout, position=False)
        self.mixers = nn.ModuleList(PastDecomposableMixing(self.lengths, p.d_model, p.d_ff, p.moving_avg, p.dropout)
                                    for _ in range(p.e_layers))
        self.predictors = nn.ModuleList(nn.Linear(t, dims.pred_len) for t in self.lengths)
        self.readout = nn.Linear(p.d_model, 1)

    def _scales(self, z: torch.Tensor, marks: torch.Tensor | None):
        """[B, L, C] -> per scale: [B*C, T_i, 1] values and [B*C, T_i, M] marks (or None)."""
        B, L, C = z.shape
        w = self.params.down_sampling_window
        series = z.transpose(1, 2)  # [B, C, L]
        out = []
        for i, t in enumerate(self.lengths):
            if i:
                series = self.pool(series)
                marks = None if marks is None else marks[:, ::w][:, :t]
            m = None if marks is None else marks.repeat_interleave(C, dim=0)
            out.append((series.reshape(B * C, t, 1), m))
        return out

    def forward_features(self, x, x_mark=None, y_mark=None):
        B, L, C = x.shape
        z, state = self.normalizer.normalize(x)
        marks = x_mark if self.params.use_time_features else None
        hs = [self.embed(v, m) for v, m in self._scales(z, marks)]
        for mixer in self.mixers:
            hs = mixer(hs)
        future = sum(pred(h.transpose(1, 2)) for pred, h in zip(self.predictors, hs))  # [B*C, d, H]
        future = future.transpose(1, 2)  # [B*C, H, d]
        y = self.readout(future).reshape(B, C, -1).transpose(1, 2)  # [B, H, C]
        return self.normalizer.denormalize(y, state), {"decoder": future.reshape(B, C, -1)}

    def feature_shapes(self):
        return {"decoder": (self.dims.n_channels, self.dims.pred_len * self.params.d_model)}
