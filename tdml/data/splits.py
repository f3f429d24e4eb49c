"""Train/validation/test border rules (Time-Series-Library convention).

Validation and test windows start ``seq_len`` rows before their period, so their first
target is the first row of the period. The scaler is fit on the training rows only.
"""

from __future__ import annotations

from typing import Callable

from tdml.registry import Registry

Borders = dict[str, tuple[int, int]]  # split -> (first row of its windows, end row)
SPLITS: Registry[Callable[[int, int], Borders]] = Registry("split rule")


def _ett(seq_len: int, rows_per_month: int) -> Borders:
    tr, va, te = 12 * rows_per_month, 16 * rows_per_month, 20 * rows_per_month
    return {"train": (0, tr), "val": (tr - seq_len, va), "test": (va - seq_len, te)}


@SPLITS.register("ett_hour")
def ett_hour(n_rows: int, seq_len: int) -> Borders:
    """12 / 4 / 4 months of 30 days, hourly rows (rows after month 20 are unused)."""
    return _ett(seq_len, 30 * 24)


@SPLITS.register("ett_minute")
def ett_minute(n_rows: int, seq_len: int) -> Borders:
    """As ett_hour with 15-minute rows (x4)."""
    return _ett(seq_len, 30 * 24 * 4)


@SPLITS.register("ratio")
def ratio(n_rows: int, seq_len: int) -> Borders:
    """70 % / 10 % / 20 % in time order."""
    n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
    n_val = n_rows - n_train - n_test
    return {
        "train": (0, n_train),
        "val": (n_train - seq_len, n_train + n_val),
        "test": (n_rows - n_test - seq_len, n_rows),
    }
