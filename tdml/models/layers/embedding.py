"""Token embeddings shared by the Transformer teachers."""

from __future__ import annotations

import torch
from torch import nn


class VariateEmbedding(nn.Module):
    """iTransformer's inverted embedding: each variate's whole lookback becomes one token.

    Calendar features (x_mark, [B, L, M]) become M extra tokens when given.
    """

    def __init__(self, seq_len: int, d_model: int, dropout: float):
        super().__init__()
        self.proj = nn.Linear(seq_len, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        tokens = x.transpose(1, 2)  # [B, C, L]
        if x_mark is not None and x_mark.shape[-1] > 0:
            tokens = torch.cat([tokens, x_mark.transpose(1, 2)], dim=1)  # [B, C + M, L]
        return self.drop(self.proj(tokens))


class TokenEmbedding(nn.Module):
    """Values -> d_model with a width-3 circular convolution over time (local context per step)."""

    def __init__(self, c_in: int, d_model: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, c_in] -> [B, T, d_model]
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


def sinusoidal_positions(length: int, d_model: int, device: torch.device) -> torch.Tensor:
    """The fixed sin/cos position code of "Attention is all you need", [length, d_model].

    Computed per call on the input's device: it is cheap and keeps it out of the state_dict.
    """
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32)
                     * (-torch.log(torch.tensor(10000.0)) / d_model))
    pe = torch.zeros(length, d_model, device=device)
    pe[:, 0::2] = torch.sin(pos * rate)
    pe[:, 1::2] = torch.cos(pos * rate)[:, : d_model // 2]
    return pe


class DataEmbedding(nn.Module):
    """value (TokenEmbedding) [+ sinusoidal position] [+ Linear(calendar marks)] -> dropout.

    The calendar term exists only when ``n_marks > 0``; marks passed to a model built without
    them (or ``None``) are ignored, so a dataset without dates embeds values (+ position) only.
    """

    def __init__(self, c_in: int, d_model: int, n_marks: int, dropout: float, position: bool = True):
        super().__init__()
        self.value = TokenEmbedding(c_in, d_model)
        self.position = position
        self.temporal = nn.Linear(n_marks, d_model, bias=False) if n_marks > 0 else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, marks: torch.Tensor | None = None) -> torch.Tensor:
        out = self.value(x)
        if self.position:
            out = out + sinusoidal_positions(x.shape[1], out.shape[-1], x.device)
        if self.temporal is not None and marks is not None:
            out = out + self.temporal(marks)
        return self.drop(out)


class PatchEmbedding(nn.Module):
    """PatchTST: per-channel series -> overlapping patches -> Linear(P->d) + learned position.

    The series is first padded at the end by repeating its last value ``stride`` times, so
    the number of patches is ``(L - P) // S + 2``.
    """

    def __init__(self, seq_len: int, patch_len: int, stride: int, d_model: int, dropout: float):
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        self.n_patches = patch_count(seq_len, patch_len, stride)
        self.proj = nn.Linear(patch_len, d_model)
        self.pos = nn.Parameter(torch.empty(self.n_patches, d_model).uniform_(-0.02, 0.02))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, L] -> [N, n_patches, d_model]
        x = torch.cat([x, x[:, -1:].expand(-1, self.stride)], dim=1)
        patches = x.unfold(1, self.patch_len, self.stride)
        return self.drop(self.proj(patches) + self.pos)


def patch_count(seq_len: int, patch_len: int, stride: int) -> int:
    """Patches PatchEmbedding cuts from a length-``seq_len`` series (end-padded by ``stride``)."""
    return (seq_len + stride - patch_len) // stride + 1
