"""The shapes and values that cross layers: a leaf module (it imports only torch).

``Dims`` is what the data fixes about a model (data loaders build it, models read it);
``ModelOutput`` is one forward pass as the trainer, the losses and the teacher cache see it.
Keeping them here lets ``tdml.data`` and ``tdml.train`` depend on the contract instead of on
``tdml.models`` or ``tdml.losses``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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


class LazyFeatures(Mapping):
    """Named features of which some are computed only when first read, then kept: an entry
    that costs extra work (an LSTM's cell states) is free for every run that never reads it.
    A deferred entry is computed under the grad mode of the forward pass that made it."""

    def __init__(self, ready: dict[str, torch.Tensor], later: dict[str, Callable[[], torch.Tensor]]):
        self._ready, self._later = dict(ready), dict(later)
        self._grad = torch.is_grad_enabled()

    def __getitem__(self, name: str) -> torch.Tensor:
        if name in self._later:
            with torch.set_grad_enabled(self._grad):
                self._ready[name] = self._later.pop(name)()
        return self._ready[name]

    def __contains__(self, name) -> bool:  # Mapping's would compute the entry
        return name in self._ready or name in self._later

    def __iter__(self) -> Iterator[str]:
        return iter([*self._ready, *self._later])

    def __len__(self) -> int:
        return len(self._ready) + len(self._later)


@dataclass
class ModelOutput:
    """One forward pass: the prediction (forecast or logits) and the named features."""

    pred: torch.Tensor
    features: Mapping[str, torch.Tensor] = field(default_factory=dict)


def run_model(model: nn.Module, batch: dict[str, torch.Tensor]) -> ModelOutput:
    """Forward a batch through a tdml model, passing calendar features only if it reads them."""
    if getattr(model, "uses_time_features", False):
        pred, feats = model.forward_features(batch["x"], batch.get("x_mark"), batch.get("y_mark"))
    else:
        pred, feats = model.forward_features(batch["x"])
    return ModelOutput(pred, feats)
