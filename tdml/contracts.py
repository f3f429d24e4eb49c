"""The shapes and values that cross layers: a leaf module (it imports only torch).

``Dims`` is what the data fixes about a model (data loaders build it, models read it);
``ModelOutput`` is one forward pass as the trainer, the losses and the teacher cache see it.
Keeping them here lets ``tdml.data`` and ``tdml.train`` depend on the contract instead of on
``tdml.models`` or ``tdml.losses``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class Dims:
    """Shapes fixed by the data, not by the user's choice of architecture."""

    seq_len: int
    n_channels: int
    pred_len: int = 0  # forecasting horizon H (0 for classification)
    n_classes: int = 0  # classification only
    n_marks: int = 0  # number of time-feature columns in x_mark / y_mark


@dataclass
class ModelOutput:
    """One forward pass: the prediction (forecast or logits) and the named features."""

    pred: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)


def run_model(model: nn.Module, batch: dict[str, torch.Tensor]) -> ModelOutput:
    """Forward a batch through a tdml model, passing calendar features only if it reads them."""
    if getattr(model, "uses_time_features", False):
        pred, feats = model.forward_features(batch["x"], batch.get("x_mark"), batch.get("y_mark"))
    else:
        pred, feats = model.forward_features(batch["x"])
    return ModelOutput(pred, feats)
