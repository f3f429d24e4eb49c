"""DLinear (Zeng et al., AAAI 2023): decomposition + one linear map per component.

features(): ``hidden`` [B, C, 2H], the seasonal and trend forecasts side by side before
they are summed (DLinear has no deeper representation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.decomposition import SeriesDecomposition


@dataclass
class DLinearParams:
    moving_avg: int = 25
    individual: bool = False  # one linear map per channel instead of one shared

    def validate(self):
        require(self.moving_avg >= 1, f"moving_avg must be >= 1, got {self.moving_avg}")


class _PerChannelLinear(nn.Module):
    def __init__(self, n_channels: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_channels, d_in, d_out).uniform_(-d_in**-0.5, d_in**-0.5))
        self.bias = nn.Parameter(torch.zeros(n_channels, d_out))

    def forward(self, x):  # [B, C, L]
        return torch.einsum("bcl,clh->bch", x, self.weight) + self.bias


@register_model("dlinear")
class DLinear(Forecaster):
    Params = DLinearParams

    def __init__(self, dims: Dims, params: DLinearParams):
        super().__init__(dims, params)
        self.decomp = SeriesDecomposition(params.moving_avg)
        make = (lambda: _PerChannelLinear(dims.n_channels, dims.seq_len, dims.pred_len)) if params.individual \
            else (lambda: nn.Linear(dims.seq_len, dims.pred_len))
        self.seasonal = make()
        self.trend = make()

    def forward_features(self, x, x_mark=None, y_mark=None):
        s, t = self.decomp(x)
        ys = self.seasonal(s.transpose(1, 2))  # [B, C, H]
        yt = self.trend(t.transpose(1, 2))
        return (ys + yt).transpose(1, 2), {"hidden": torch.cat([ys, yt], dim=-1)}

    def feature_shapes(self):
        return {"hidden": (self.dims.n_channels, 2 * self.dims.pred_len)}
