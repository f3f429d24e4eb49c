"""Classification metrics: hand-checked values, binary problems, absent classes, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tdml.metrics import classification_metrics


def test_perfect_scores():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [4.0, 0, 0]])
    m = classification_metrics(logits, torch.tensor([0, 1, 2, 0]))
    assert m["auc_prc"] == 1.0 and m["auc_roc"] == 1.0 and m["accuracy"] == 1.0
    assert set(m) == {"auc_prc", "auc_roc", "accuracy", "ce"}


def test_hand_checked_binary_macro():
    # probabilities of class 1: 0.9, 0.6, 0.4, 0.2; labels 1, 0, 0, 1
    p1 = np.array([0.9, 0.6, 0.4, 0.2])
    probs = np.stack([1 - p1, p1], 1)
    m = classification_metrics(probs, np.array([1, 0, 0, 1]), from_logits=False)
    # class 1 ranks its samples pos, neg, neg, pos: AP = (1/1 + 2/4) / 2 = 3/4
    # class 0 ranks them neg, pos, pos, neg: AP = (1/2 + 2/3) / 2 = 7/12; macro = 2/3
    assert m["auc_prc"] == pytest.approx(2 / 3)
    assert m["auc_roc"] == pytest.approx(0.5)  # 2 of 4 positive/negative pairs ordered right
    assert m["accuracy"] == pytest.approx(0.5)
    assert "ce" not in m


def test_logits_are_softmaxed_and_ce():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    m = classification_metrics(logits, torch.tensor([0, 1]))
    assert m["ce"] == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2)


def test_absent_class_is_left_out_of_macro_means():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    y = np.array([0, 1, 0, 1])  # class 2 never occurs
    m = classification_metrics(probs, y, from_logits=False)
    two = classification_metrics(probs[:, :2] / probs[:, :2].sum(1, keepdims=True), y, from_logits=False)
    assert m["auc_prc"] == pytest.approx(two["auc_prc"]) == 1.0
    assert m["auc_roc"] == pytest.approx(1.0) and m["accuracy"] == 1.0


def test_single_class_split():
    m = classification_metrics(np.array([[0.8, 0.2], [0.4, 0.6]]), np.array([0, 0]), from_logits=False)
    assert m["auc_prc"] == 1.0 and math.isnan(m["auc_roc"]) and m["accuracy"] == 0.5


def test_non_finite_scores_give_nan():
    m = classification_metrics(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    assert all(math.isnan(v) for v in m.values())


def test_matches_sklearn_multiclass():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 4))
    y = rng.integers(0, 4, 60)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(torch.tensor(logits), torch.tensor(y))
    onehot = np.eye(4)[y]
    assert m["auc_prc"] == pytest.approx(average_precision_score(onehot, probs, average="macro"))
    assert m["auc_roc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))


@pytest.mark.parametrize("scores, labels", [
    (np.zeros((3, 2)), np.zeros(2)), (np.zeros((3,)), np.zeros(3)), (np.zeros((2, 2)), np.array([0, 2])),
    (np.zeros((2, 1)), np.array([0, 0])),
])
def test_bad_input(scores, labels):
    with pytest.raises(ValueError):
        classification_metrics(scores, labels)


def test_streamed_forecast_metrics_equal_the_whole_split_ones():
    import torch

    from tdml.tasks import TASKS, forecast_metrics

    g = torch.Generator().manual_seed(0)
    preds = [torch.randn(b, 12, 5, generator=g) for b in (32, 32, 7)]
    ys = [torch.randn(b, 12, 5, generator=g) for b in (32, 32, 7)]
    acc = TASKS.get("forecast").new_accumulator()
    for p, y in zip(preds, ys):
        acc.add(p, y)
    assert not hasattr(acc, "preds")  # nothing of the split is kept
    whole = forecast_metrics(torch.cat(preds), torch.cat(ys))
    for k, v in acc.result().items():
        assert v == pytest.approx(whole[k], rel=1e-12)
