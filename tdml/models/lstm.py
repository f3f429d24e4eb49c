"""LSTM classifiers of MemKD (docs/methods.md §2.2): teacher 3 x 100, student 1 x 8.

One architecture, registered twice with different default ``Params``; a linear head reads
the top layer's last hidden state. features(): ``sequence`` [B, L, hidden] (the top
layer's hidden states h_1..h_L, what memory-based losses compare) and ``last`` [B, hidden].
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tdml.config import require
from tdml.models.base import Classifier, Dims, register_model


@dataclass
class LSTMParams:
    hidden: int = 100
    layers: int = 3
    dropout: float = 0.0  # between stacked layers and before the head

    def validate(self):
        require(self.hidden > 0, f"hidden must be > 0, got {self.hidden}")
        require(self.layers >= 1, f"layers must be >= 1, got {self.layers}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class LSTMStudentParams(LSTMParams):
    hidden: int = 8
    layers: int = 1


class LSTMClassifier(Classifier):
    Params = LSTMParams

    def __init__(self, dims: Dims, params: LSTMParams):
        super().__init__(dims, params)
        require(dims.n_classes >= 2, f"an LSTM classifier needs n_classes >= 2, got {dims.n_classes}")
        require(dims.n_channels >= 1, f"n_channels must be >= 1, got {dims.n_channels}")
        self.lstm = nn.LSTM(dims.n_channels, params.hidden, params.layers, batch_first=True,
                            dropout=params.dropout if params.layers > 1 else 0.0)
        self.drop = nn.Dropout(params.dropout)
        self.head = nn.Linear(params.hidden, dims.n_classes)

    def forward_features(self, x, x_mark=None, y_mark=None):
        seq, _ = self.lstm(x)  # [B, L, hidden], top layer
        last = seq[:, -1]
        return self.head(self.drop(last)), {"sequence": seq, "last": last}

    def feature_shapes(self):
        h = self.params.hidden
        return {"sequence": (self.dims.seq_len, h), "last": (h,)}


@register_model("lstm_teacher")
class LSTMTeacher(LSTMClassifier):
    Params = LSTMParams


@register_model("lstm_student")
class LSTMStudent(LSTMClassifier):
    Params = LSTMStudentParams
