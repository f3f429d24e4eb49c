"""The paired 95 % CI the benchmarks report for method-vs-base comparisons (benchmarks/paired.py)."""

import math
import sys
from pathlib import Path

import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from paired import ci_text, excludes_zero, paired_ci  # noqa: E402


def test_the_interval_is_the_paired_t_interval():
    a, b = [0.41, 0.39, 0.43, 0.40, 0.42], [0.42, 0.41, 0.43, 0.43, 0.42]
    mean, lo, hi = paired_ci(a, b)
    ref = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert mean == pytest.approx(sum(a) / 5 - sum(b) / 5)
    assert (lo, hi) == (pytest.approx(ref.low), pytest.approx(ref.high))
    assert lo < mean < hi


def test_verdicts_and_degenerate_inputs():
    assert excludes_zero(*paired_ci([1.0, 1.1, 0.9], [1.2, 1.3, 1.1])[1:]) == "yes (better)"
    assert excludes_zero(*paired_ci([1.2, 1.3, 1.1], [1.0, 1.1, 0.9])[1:]) == "yes (worse)"
    assert excludes_zero(*paired_ci([1.0, 1.2, 0.9], [1.1, 1.0, 1.0])[1:]) == "no"
    assert excludes_zero(*paired_ci([1.2, 1.3, 1.1], [1.0, 1.1, 0.9])[1:], lower_is_better=False) == "yes (better)"
    mean, lo, hi = paired_ci([1.0], [0.5])
    assert mean == 0.5 and math.isnan(lo) and ci_text(mean, lo, hi) == "+0.5000" and excludes_zero(lo, hi) == "no"
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_ci([1.0, 2.0], [1.0])
