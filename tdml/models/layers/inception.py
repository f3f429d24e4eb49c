"""TimesNet's Inception block: parallel 2-D convolutions of growing odd kernels, averaged."""

from __future__ import annotations

import torch
from torch import nn


class InceptionBlock(nn.Module):
    """Kernels 1, 3, ..., 2n-1 with 'same' padding on a [B, C, rows, cols] image; outputs averaged."""

    def __init__(self, c_in: int, c_out: int, n_kernels: int = 6):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, kernel_size=2 * i + 1, padding=i) for i in range(n_kernels))
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        return out / len(self.convs)
