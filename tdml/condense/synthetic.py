"""The learnable synthetic set: one series per channel, windows re-cut from it every step."""

from __future__ import annotations

import torch
from torch import nn


def series_length(n_windows: int, seq_len: int, pred_len: int, stride: int) -> int:
    """Shortest series whose ``n_windows`` windows at ``stride`` cover it end to end."""
    return (n_windows - 1) * stride + seq_len + pred_len


class SyntheticSeries(nn.Module):
    """``series`` [T, C] is the only parameter; ``windows()`` cuts (x [n, L, C], y [n, H, C]).

    T is chosen so the windows cover every point: each point gets a gradient every step.
    """

    def __init__(self, init: torch.Tensor, n_windows: int, seq_len: int, pred_len: int, stride: int):
        super().__init__()
        T = series_length(n_windows, seq_len, pred_len, stride)
        if init.shape[0] != T:
            raise ValueError(f"init has {init.shape[0]} rows, the synthetic series needs {T}")
        self.series = nn.Parameter(init.clone().float())
        self.n_windows, self.seq_len, self.pred_len, self.stride = n_windows, seq_len, pred_len, stride

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
        return torch.arange(self.n_windows, device=self.series.device) * self.stride

    def windows(self, series: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.series if series is None else series
        L, H = self.seq_len, self.pred_len
        w = s.unfold(0, L + H, self.stride)  # [n, C, L+H], a view: gradients flow back to s
        w = w.transpose(1, 2)
        return w[:, :L], w[:, L:]
