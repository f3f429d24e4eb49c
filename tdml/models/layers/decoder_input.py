"""Decoder inputs of the encoder-decoder forecasters (Autoformer, FEDformer, MICN).

The decoder sees the last ``label_len`` steps of the lookback followed by ``H`` placeholder
steps; its calendar marks are the matching slice of x_mark followed by y_mark.
"""

from __future__ import annotations

import torch

from tdml.config import require


def resolve_label_len(label_len: int | None, seq_len: int) -> int:
    """``None`` means half the lookback (the reference scripts' usual choice)."""
    n = seq_len // 2 if label_len is None else label_len
    require(0 <= n <= seq_len, f"label_len must be in [0, seq_len={seq_len}], got {n}")
    return n


def last_steps(x: torch.Tensor, n: int) -> torch.Tensor:
    """x[:, -n:] that is empty (not the whole series) for n == 0."""
    return x[:, x.shape[1] - n:]


def decoder_marks(x_mark: torch.Tensor | None, y_mark: torch.Tensor | None, label_len: int) -> torch.Tensor | None:
    if x_mark is None or y_mark is None:
        return None
    return torch.cat([last_steps(x_mark, label_len), y_mark], dim=1)
