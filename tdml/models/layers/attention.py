"""Self-attention encoder used by the Transformer teachers (post-norm, GELU FFN)."""

from __future__ import annotations

import torch
from torch import nn


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.GELU() if activation == "gelu" else nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
        )
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, _ = self.attn(x, x, x, need_weights=False)
        x = self.norm1(x + self.drop(a))
        return self.norm2(x + self.drop(self.ff(x)))


class Encoder(nn.Module):
    """A stack of EncoderLayer followed by a final LayerNorm."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float,
                 activation: str = "gelu"):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, activation) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class TokenBatchNorm(nn.Module):
    """BatchNorm1d over the feature axis of [B, T, d] tokens (PatchTST's choice over LayerNorm)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class BatchNormEncoderLayer(EncoderLayer):
    """EncoderLayer with BatchNorm instead of LayerNorm: PatchTST found it better for series."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str = "gelu"):
        super().__init__(d_model, n_heads, d_ff, dropout, activation)
        self.norm1, self.norm2 = TokenBatchNorm(d_model), TokenBatchNorm(d_model)
