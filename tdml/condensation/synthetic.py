"""The learnable synthetic set, in one of two layouts (``LAYOUTS``, ``CondenseRunConfig.layout``).

* ``series`` -- CondTSF's code: one series [T, C], windows re-cut from it every step at
  ``match.stride``, so neighbouring windows share L + H - stride points. T is chosen so the
  windows cover every point (each point gets a gradient every step).
* ``samples`` -- DDTime's paper ("learnable tensors of shape [S, N, T_in + T_out], initialized
  from random real-data windows"): S independent multivariate windows [S, L + H, C], each from
  its own random real training window (distinct starts). Nothing is shared, so ISIB can push
  samples apart without breaking a neighbour.

Both expose ``values`` (the one parameter), ``windows(values)`` -> (x [n, L, C], y [n, H, C]),
``interpolate_labels`` (CondTSF's label step) and ``series()`` (the learned series, or None).
"""

from __future__ import annotations

import torch
from torch import nn

from tdml.registry import Registry


def series_length(n_windows: int, seq_len: int, pred_len: int, stride: int) -> int:
    """Shortest series whose ``n_windows`` windows at ``stride`` cover it end to end."""
    return (n_windows - 1) * stride + seq_len + pred_len


class SyntheticSet(nn.Module):
    def __init__(self, init: torch.Tensor, n_windows: int, seq_len: int, pred_len: int):
        super().__init__()
        self.values = nn.Parameter(init.clone().float())
        self.n_windows, self.seq_len, self.pred_len = n_windows, seq_len, pred_len

    def windows(self, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def interpolate_labels(self, pred: torch.Tensor, beta: float) -> None:
        """CondTSF: every label moves toward the expert's prediction, y <- (1 - beta) y + beta P."""
        raise NotImplementedError

    def series(self, values: torch.Tensor) -> torch.Tensor | None:
        """The learned series behind ``values`` (None when the windows are independent)."""
        return None


LAYOUTS: Registry[type[SyntheticSet]] = Registry("synthetic layout")


@LAYOUTS.register("series")
class SyntheticSeries(SyntheticSet):
    """``values`` [T, C]; windows at ``stride`` (views: gradients flow back to the series)."""

    def __init__(self, init: torch.Tensor, n_windows: int, seq_len: int, pred_len: int, stride: int):
        T = series_length(n_windows, seq_len, pred_len, stride)
        if init.shape[0] != T:
            raise ValueError(f"init has {init.shape[0]} rows, the synthetic series needs {T}")
        super().__init__(init, n_windows, seq_len, pred_len)
        self.stride = stride

    @classmethod
    def from_real(cls, train_values: torch.Tensor, n_windows: int, seq_len: int, pred_len: int,
                  stride: int, generator: torch.Generator) -> "SyntheticSeries":
        """Initialise from a random contiguous segment of the (scaled) real training split."""
        T = series_length(n_windows, seq_len, pred_len, stride)
        if train_values.shape[0] < T:
            raise ValueError(f"the training split has {train_values.shape[0]} rows; {n_windows} windows "
                             f"at stride {stride} need {T}")
        start = int(torch.randint(0, train_values.shape[0] - T + 1, (1,), generator=generator))
        return cls(train_values[start:start + T], n_windows, seq_len, pred_len, stride)

    @property
    def starts(self) -> torch.Tensor:
        return torch.arange(self.n_windows, device=self.values.device) * self.stride

    def windows(self, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.values if values is None else values
        w = s.unfold(0, self.seq_len + self.pred_len, self.stride).transpose(1, 2)  # [n, L+H, C]
        return w[:, :self.seq_len], w[:, self.seq_len:]

    @torch.no_grad()
    def interpolate_labels(self, pred: torch.Tensor, beta: float) -> None:
        # windows overlap: a position several windows predict moves toward their mean prediction
        s, H = self.values.data, pred.shape[1]
        idx = (self.starts[:, None] + self.seq_len + torch.arange(H, device=s.device)).reshape(-1)  # [n*H]
        total = torch.zeros_like(s).index_add_(0, idx, pred.reshape(-1, s.shape[1]))
        count = torch.zeros(s.shape[0], 1, device=s.device).index_add_(0, idx, torch.ones(idx.shape[0], 1, device=s.device))
        hit = count[:, 0] > 0
        s[hit] = (1 - beta) * s[hit] + beta * total[hit] / count[hit]

    def series(self, values: torch.Tensor) -> torch.Tensor | None:
        return values


@LAYOUTS.register("samples")
class SyntheticSamples(SyntheticSet):
    """``values`` [S, L + H, C]: independent windows (``stride`` is not used)."""

    @classmethod
    def from_real(cls, train_values: torch.Tensor, n_windows: int, seq_len: int, pred_len: int,
                  stride: int, generator: torch.Generator) -> "SyntheticSamples":
        """Initialise each sample from its own random real training window (distinct starts)."""
        n_starts = train_values.shape[0] - seq_len - pred_len + 1
        if n_starts < n_windows:
            raise ValueError(f"the training split has {n_starts} windows of {seq_len} + {pred_len} rows; "
                             f"{n_windows} independent samples need as many")
        starts = torch.randperm(n_starts, generator=generator)[:n_windows].sort().values
        idx = starts[:, None] + torch.arange(seq_len + pred_len)
        return cls(train_values[idx], n_windows, seq_len, pred_len)

    def windows(self, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.values if values is None else values
        return v[:, :self.seq_len], v[:, self.seq_len:]

    @torch.no_grad()
    def interpolate_labels(self, pred: torch.Tensor, beta: float) -> None:
        y = self.values.data[:, self.seq_len:]
        y.mul_(1 - beta).add_(beta * pred)
