"""Teacher selection ties: equal validation scores (small validation splits saturate at AUC-PRC
1.0) go to the lower validation CE, then to the first seed; NaN never wins."""

import pytest

from tdml.errors import TdmlError
from tdml.selection import best_key


def test_best_score_wins_whatever_the_tiebreak():
    assert best_key({0: 0.9, 1: 0.95, 2: 0.8}, "max", {0: 0.1, 1: 0.9, 2: 0.0}) == 1
    assert best_key({0: 0.3, 1: 0.2}, "min", {0: 0.0, 1: 1.0}) == 1


def test_tied_scores_go_to_the_lower_validation_ce():
    scores = {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.9}
    assert best_key(scores, "max", {0: 0.004, 1: 0.0001, 2: 0.002, 3: 0.0}) == 1
    assert best_key(scores, "max") == 0  # no tiebreak: the first seed
    assert best_key(scores, "max", {0: 0.1, 1: 0.1, 2: 0.1, 3: 0.0}) == 0  # tied CE too: the first seed


def test_nan_never_wins():
    assert best_key({0: float("nan"), 1: 0.5}, "max", {0: 0.0, 1: 1.0}) == 1
    with pytest.raises(TdmlError):
        best_key({0: float("nan")}, "max")
