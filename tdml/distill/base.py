"""The loss-module contract and the weighted sum that combines named terms."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tdml.registry import Registry


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


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum_k weights[k] * terms[k]; a term without a weight counts once."""
    total = None
    for name, value in terms.items():
        w = weights.get(name, 1.0)
        if w == 0:
            continue
        total = w * value if total is None else total + w * value
    if total is None:
        any_term = next(iter(terms.values()))
        return any_term * 0.0
    return total


# name -> loss-module class; the distill run builds the loss named in its config.
LOSSES: Registry[type[nn.Module]] = Registry("distillation loss")
