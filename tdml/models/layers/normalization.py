"""Per-window input normalisation used by forecasters (instance norm on the lookback)."""

from __future__ import annotations

import torch
from torch import nn

from tdml.registry import Registry

NORMALIZERS: Registry[type[nn.Module]] = Registry("normalisation")


@NORMALIZERS.register("none")
class Identity(nn.Module):
    def __init__(self, n_channels: int):
        super().__init__()

    def normalize(self, x):
        return x, None

    def denormalize(self, y, state):
        return y


@NORMALIZERS.register("mean")
class MeanShift(nn.Module):
    """Subtract the lookback mean per channel, add it back to the forecast ("non-stationary")."""

    def __init__(self, n_channels: int):
        super().__init__()

    def normalize(self, x):
        mean = x.mean(dim=1, keepdim=True).detach()
        return x - mean, mean

    def denormalize(self, y, mean):
        return y + mean


@NORMALIZERS.register("revin")
class RevIN(nn.Module):
    """Reversible instance normalisation with a learnable affine map per channel."""

    def __init__(self, n_channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_channels))
        self.bias = nn.Parameter(torch.zeros(n_channels))

    def normalize(self, x):
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mean) / std * self.weight + self.bias, (mean, std)

    def denormalize(self, y, state):
        mean, std = state
        return (y - self.bias) / (self.weight + self.eps * self.eps) * std + mean


@NORMALIZERS.register("standard")
class InstanceStandardize(nn.Module):
    """Subtract the lookback mean and divide by its std (no learnable parameters)."""

    def __init__(self, n_channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def normalize(self, x):
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mean) / std, (mean, std)

    def denormalize(self, y, state):
        mean, std = state
        return y * std + mean


def make_normalizer(name: str, n_channels: int) -> nn.Module:
    return NORMALIZERS.get(name)(n_channels)
