"""A small channel-independent 1-D CNN forecaster (cross-architecture tests of condensation).

Each channel's lookback [L] goes through ``n_layers`` same-padded Conv1d + ReLU blocks, is
flattened and read out by one Linear to [H]. features(): ``hidden`` [B, C, channels * L].
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class CNNParams:
    channels: int = 16
    kernel_size: int = 3
    n_layers: int = 2
    norm: str = "mean"

    def validate(self):
        require(self.channels > 0, f"channels must be > 0, got {self.channels}")
        require(self.kernel_size >= 1 and self.kernel_size % 2 == 1,
                f"kernel_size must be odd and >= 1 (same padding), got {self.kernel_size}")
        require(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


@register_model("cnn")
class CNN(Forecaster):
    Params = CNNParams

    def __init__(self, dims: Dims, params: CNNParams):
        super().__init__(dims, params)
        self.normalizer = make_normalizer(params.norm, dims.n_channels)
        layers, c_in = [], 1
        for _ in range(params.n_layers):
            layers += [nn.Conv1d(c_in, params.channels, params.kernel_size, padding=params.kernel_size // 2),
                       nn.ReLU()]
            c_in = params.channels
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(params.channels * dims.seq_len, dims.pred_len)

    def forward_features(self, x, x_mark=None, y_mark=None):
        z, state = self.normalizer.normalize(x)
        B, L, C = z.shape
        h = self.body(z.transpose(1, 2).reshape(B * C, 1, L)).reshape(B, C, -1)  # channels share weights
        y = self.head(h).transpose(1, 2)
        return self.normalizer.denormalize(y, state), {"hidden": h}

    def feature_shapes(self):
        return {"hidden": (self.dims.n_channels, self.params.channels * self.dims.seq_len)}
