"""Moving-average series decomposition (Autoformer / DLinear / DMLP)."""

import torch
from torch import nn


class MovingAverage(nn.Module):
    """Mean over a sliding window along time, edges padded by repetition so length is kept."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.pool = nn.AvgPool1d(kernel_size, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, C]
        front = (self.kernel_size - 1) // 2
        back = self.kernel_size - 1 - front
        x = torch.cat([x[:, :1].expand(-1, front, -1), x, x[:, -1:].expand(-1, back, -1)], dim=1)
        return self.pool(x.transpose(1, 2)).transpose(1, 2)


class SeriesDecomposition(nn.Module):
    """x -> (seasonal, trend) with trend = moving average, seasonal = x - trend."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.moving_avg = MovingAverage(kernel_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trend = self.moving_avg(x)
        return x - trend, trend


class MultiScaleDecomposition(nn.Module):
    """MICN's decomposition: trend = mean of several moving averages, seasonal = x - trend."""

    def __init__(self, kernel_sizes: tuple[int, ...] | list[int]):
        super().__init__()
        self.averages = nn.ModuleList(MovingAverage(k) for k in kernel_sizes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trend = torch.stack([avg(x) for avg in self.averages]).mean(0)
        return x - trend, trend


class SeasonalLayerNorm(nn.Module):
    """Autoformer's LayerNorm for seasonal parts: normalise each step, then remove the time mean."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d]
        x = self.norm(x)
        return x - x.mean(dim=1, keepdim=True)
