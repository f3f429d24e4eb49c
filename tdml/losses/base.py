"""The one loss contract (docs/architecture.md, "Contracts") and the weighted sum of named terms.

Every method -- forecasting (TimeDistill), classification (KD, FitNet, RKD, AT, DKD, DT2W,
MemKD, none) and condensation (DDTime's plug-in terms) -- is a ``Loss``:

* a ``Config`` dataclass defined beside it (typed, validated; the resolver and the CLI read
  its fields, so method-specific options come from the method itself);
* ``forward(...) -> {term name: scalar tensor}``: named terms, each logged per epoch;
* ``weights() -> {term name: weight}``: a term whose weight is 0 is not computed;
* ``total(terms)``: the one ``weighted_sum``.

Distillation losses (registered in ``LOSSES``) add ``from_models(cfg, student, teacher)`` and
``teacher_features()``, and are called as ``loss(student_out, teacher_out, target)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from tdml.contracts import ModelOutput
from tdml.registry import Registry


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


@dataclass
class NoConfig:
    """The Config of a loss without settings."""


class Loss(nn.Module):
    """Base of every loss: config, named terms, their weights, one weighted sum."""

    Config: ClassVar[type] = NoConfig

    def __init__(self, cfg: Any = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else self.Config()

    def weights(self) -> dict[str, float]:
        """The weight of every term ``forward`` can return (0 = not computed)."""
        raise NotImplementedError

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return weighted_sum(terms, self.weights())


class DistillationLoss(Loss):
    """A loss between a student's and a frozen teacher's ``ModelOutput`` (``LOSSES`` entries)."""

    @classmethod
    def from_models(cls, cfg: Any, student, teacher) -> "DistillationLoss":
        """Build from the declared shapes of both models (a learned projection needs widths)."""
        return cls(cfg)

    def teacher_features(self) -> tuple[str, ...]:
        """The teacher ``features()`` entries the terms read (what a teacher cache keeps)."""
        return ()

    def diagnostic_settings(self) -> dict[str, Any]:
        """Keyword overrides for the run's diagnostics (e.g. the period softmax's temperature,
        so the logged period distributions are the ones the loss compared)."""
        return {}

    def forward(self, student: ModelOutput, teacher: ModelOutput, target=None) -> dict[str, torch.Tensor]:
        raise NotImplementedError


# name -> loss class; the distill run builds the loss named in its config.
LOSSES: Registry[type[DistillationLoss]] = Registry("distillation loss")
