"""A small channel-independent LSTM forecaster (cross-architecture tests of condensation).

Each channel's lookback is read step by step by an LSTM; its last hidden state is mapped
to the horizon by one Linear. features(): ``hidden`` [B, C, hidden], that last state.
The recurrence is written with ``nn.LSTMCell`` so trajectory matching can differentiate
through SGD steps on it (second-order gradients) on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class LSTMForecasterParams:
    hidden: int = 32
    norm: str = "mean"

    def validate(self):
        require(self.hidden > 0, f"hidden must be > 0, got {self.hidden}")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


@register_model("lstm_forecaster")
class LSTMForecaster(Forecaster):
    Params = LSTMForecasterParams

    def __init__(self, dims: Dims, params: LSTMForecasterParams):
        super().__init__(dims, params)
        self.normalizer = make_normalizer(params.norm, dims.n_channels)
        self.cell = nn.LSTMCell(1, params.hidden)
        self.head = nn.Linear(params.hidden, dims.pred_len)

    def forward_features(self, x, x_mark=None, y_mark=None):
        z, state = self.normalizer.normalize(x)
        B, L, C = z.shape
        seq = z.transpose(1, 2).reshape(B * C, L, 1)
        h = seq.new_zeros(B * C, self.params.hidden)
        c = torch.zeros_like(h)
        for t in range(L):
            h, c = self.cell(seq[:, t], (h, c))
        hidden = h.reshape(B, C, -1)
        y = self.head(hidden).transpose(1, 2)
        return self.normalizer.denormalize(y, state), {"hidden": hidden}

    def feature_shapes(self):
        return {"hidden": (self.dims.n_channels, self.params.hidden)}
