"""Evaluation metrics over a whole split.

Classification (docs/methods.md §2.7), from scikit-learn on class probabilities:

- ``auc_prc``: macro average precision, one-vs-rest over the classes.
- ``auc_roc``: macro ROC AUC, one-vs-rest.
- ``accuracy``: of the arg-max class.
- ``ce``: mean cross-entropy (only when given logits), for early stopping on validation loss.

Binary problems are scored like any other: one-vs-rest over both classes, then averaged
(for ROC both classes give the same AUC; for average precision they differ, and the macro
mean is what "macro AUC-PRC" means here).
A class with no example in the evaluated split has no defined AP or ROC AUC; it is left
out of the macro means, which average over the classes present (ROC additionally needs a
negative example, so a split holding a single class gives ``auc_roc`` NaN). Non-finite
scores (a diverged model) give NaN for every metric instead of an exception.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)


def classification_metrics(scores, labels, from_logits: bool = True) -> dict[str, float]:
    """Metrics of ``scores`` [N, K] (logits, or probabilities with ``from_logits=False``)
    against integer ``labels`` [N] in 0..K-1."""
    s = _numpy(scores)
    y = _numpy(labels).astype(np.int64)
    if s.ndim != 2 or y.ndim != 1 or s.shape[0] != y.shape[0]:
        raise ValueError(f"expected scores [N, K] and labels [N], got {s.shape} and {y.shape}")
    n, k = s.shape
    if n == 0 or k < 2:
        raise ValueError(f"need at least one sample and two classes, got scores of shape {s.shape}")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, got {y.min()}..{y.max()}")
    nan = float("nan")
    if not np.isfinite(s).all():
        return {"auc_prc": nan, "auc_roc": nan, "accuracy": nan, **({"ce": nan} if from_logits else {})}
    out = {}
    if from_logits:
        log_p = s - s.max(1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
        out["ce"] = float(-log_p[np.arange(n), y].mean())
        probs = np.exp(log_p)
    else:
        probs = s
    onehot = np.eye(k, dtype=np.int64)[y]
    positives = onehot.sum(0)
    # per class, then the plain mean over scored classes = sklearn's macro average
    ap = [average_precision_score(onehot[:, c], probs[:, c]) for c in range(k) if positives[c] > 0]
    roc = [roc_auc_score(onehot[:, c], probs[:, c]) for c in range(k) if 0 < positives[c] < n]
    out["auc_prc"] = float(np.mean(ap))
    out["auc_roc"] = float(np.mean(roc)) if roc else nan
    out["accuracy"] = float(accuracy_score(y, probs.argmax(1)))
    return out
