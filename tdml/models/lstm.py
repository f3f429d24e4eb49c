"""LSTM classifiers of MemKD (docs/methods.md §2.2): teacher 3 x 100, student 1 x 8.

One architecture, registered twice with different default ``Params``; a linear head reads
the top layer's last hidden state. features(): ``sequence`` [B, L, hidden] (the top
layer's hidden states h_1..h_L, what memory-based losses compare), ``last`` [B, hidden], and
``cell_sequence`` [B, L, hidden] (the top layer's cell states c_1..c_L; MemKD's paper leaves
open which of h and c is "the memory"). The fused ``nn.LSTM`` returns only the last c, so
``cell_sequence`` is computed only when read: from h the top layer's gates are one batched
product (gates_t depend on its input x_t and h_{t-1}, both known), leaving only the elementwise
recurrence c_t = f_t c_{t-1} + i_t g_t as a loop over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from tdml.config import require
from tdml.contracts import LazyFeatures
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
        training = self.training
        feats = LazyFeatures({"sequence": seq, "last": last},
                             {"cell_sequence": lambda: self._cell_sequence(x, seq, training)})
        return self.head(self.drop(last)), feats

    def feature_shapes(self):
        h = self.params.hidden
        return {"sequence": (self.dims.seq_len, h), "last": (h,), "cell_sequence": (self.dims.seq_len, h)}

    def _cell_sequence(self, x: torch.Tensor, h_top: torch.Tensor, training: bool) -> torch.Tensor:
        """The top layer's c_1..c_L [B, L, hidden] of the forward pass that gave ``h_top``."""
        lstm, top = self.lstm, self.lstm.num_layers - 1
        inp = x
        if top > 0:  # the top layer's input: the layers below, run again with the same weights
            require(not (training and lstm.dropout > 0),
                    "cell_sequence of a stacked LSTM with dropout is not available in training mode "
                    "(the layers below would draw another dropout mask); set model_params.dropout=0")
            lower = {f"{w}_l{k}": getattr(lstm, f"{w}_l{k}") for k in range(top)
                     for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            inp, _ = functional_call(self._lower_template(), lower, (x,))
        w = {n: getattr(lstm, f"{n}_l{top}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        h_prev = torch.cat([torch.zeros_like(h_top[:, :1]), h_top[:, :-1]], dim=1)  # h_0 = 0
        gates = inp @ w["weight_ih"].T + h_prev @ w["weight_hh"].T + w["bias_ih"] + w["bias_hh"]
        i, f, g, _ = gates.chunk(4, dim=-1)  # PyTorch's gate order: input, forget, cell, output
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        c, cells = torch.zeros_like(i[:, 0]), []
        for t in range(i.shape[1]):
            c = f[:, t] * c + i[:, t] * g[:, t]
            cells.append(c)
        return torch.stack(cells, dim=1)

    def _lower_template(self) -> nn.LSTM:
        """An unregistered (layers - 1)-layer LSTM whose weights ``functional_call`` replaces."""
        if "_lower" not in self.__dict__:
            p = self.params
            self.__dict__["_lower"] = nn.LSTM(self.dims.n_channels, p.hidden, p.layers - 1, batch_first=True)
        return self.__dict__["_lower"]


@register_model("lstm_teacher")
class LSTMTeacher(LSTMClassifier):
    Params = LSTMParams


@register_model("lstm_student")
class LSTMStudent(LSTMClassifier):
    Params = LSTMStudentParams
