"""Students: the channel-shared MLP and its decomposed variant DMLP (docs/methods.md §1.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.decomposition import SeriesDecomposition
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


class _ChannelMLP(nn.Module):
    """Linear(L->d) -> BatchNorm1d(C) -> ReLU -> Linear(d->H), shared across channels."""

    def __init__(self, dims: Dims, d_model: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dims.seq_len, d_model)
        self.norm = nn.BatchNorm1d(dims.n_channels)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_model, dims.pred_len)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.fc1(x.transpose(1, 2))  # [B, C, d], the distillation feature (pre-BN)
        out = self.fc2(self.drop(torch.relu(self.norm(hidden))))  # [B, C, H]
        return out.transpose(1, 2), hidden


@dataclass
class MLPParams:
    d_model: int = 512
    dropout: float = 0.0
    norm: str = "mean"  # see tdml.models.layers.normalization.NORMALIZERS

    def validate(self):
        require(self.d_model > 0, f"d_model must be > 0, got {self.d_model}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


@register_model("mlp")
class MLP(Forecaster):
    """features(): ``hidden`` [B, C, d_model], the first layer's output before BatchNorm."""

    Params = MLPParams

    def __init__(self, dims: Dims, params: MLPParams):
        super().__init__(dims, params)
        self.normalizer = make_normalizer(params.norm, dims.n_channels)
        self.body = _ChannelMLP(dims, params.d_model, params.dropout)

    def forward_features(self, x, x_mark=None, y_mark=None):
        z, state = self.normalizer.normalize(x)
        y, hidden = self.body(z)
        return self.normalizer.denormalize(y, state), {"hidden": hidden}

    def feature_shapes(self):
        return {"hidden": (self.dims.n_channels, self.params.d_model)}


@dataclass
class DMLPParams(MLPParams):
    moving_avg: int = 25

    def validate(self):
        super().validate()
        require(self.moving_avg >= 1, f"moving_avg must be >= 1, got {self.moving_avg}")


@register_model("dmlp")
class DMLP(Forecaster):
    """Seasonal/trend decomposition, one channel MLP per part, outputs summed.

    features(): ``hidden`` [B, C, d_model] = seasonal + trend first-layer outputs (pre-BN),
    the representation whose linear read-out the two branches share.
    """

    Params = DMLPParams

    def __init__(self, dims: Dims, params: DMLPParams):
        super().__init__(dims, params)
        self.normalizer = make_normalizer(params.norm, dims.n_channels)
        self.decomp = SeriesDecomposition(params.moving_avg)
        self.seasonal = _ChannelMLP(dims, params.d_model, params.dropout)
        self.trend = _ChannelMLP(dims, params.d_model, params.dropout)

    def forward_features(self, x, x_mark=None, y_mark=None):
        z, state = self.normalizer.normalize(x)
        s, t = self.decomp(z)
        ys, hs = self.seasonal(s)
        yt, ht = self.trend(t)
        return self.normalizer.denormalize(ys + yt, state), {"hidden": hs + ht}

    def feature_shapes(self):
        return {"hidden": (self.dims.n_channels, self.params.d_model)}
