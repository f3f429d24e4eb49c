"""Paired differences with a Student-t 95 % confidence interval (issues 22 and 23 ask every
method-vs-base comparison for one): with n paired runs, mean ± t(0.975, n-1) · s / sqrt(n)."""

from __future__ import annotations

import math
import statistics

from scipy import stats


def paired_ci(with_: list[float], without: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean difference with − without, CI low, CI high); the CI is NaN with fewer than two pairs."""
    if len(with_) != len(without) or not with_:
        raise ValueError(f"paired_ci needs equal, non-empty lists (got {len(with_)} and {len(without)})")
    d = [a - b for a, b in zip(with_, without)]
    mean = statistics.mean(d)
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def ci_text(mean: float, lo: float, hi: float, digits: int = 4) -> str:
    """'+0.0012 [-0.0008, +0.0032]' (the interval omitted when undefined)."""
    if math.isnan(lo):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def excludes_zero(lo: float, hi: float, lower_is_better: bool = True) -> str:
    """'yes (better)' / 'yes (worse)' / 'no' (the CI holds 0, or is undefined)."""
    if math.isnan(lo) or lo <= 0 <= hi:
        return "no"
    return "yes (better)" if (hi < 0) == lower_is_better else "yes (worse)"
