"""The model contract every tdml architecture follows.

Forecaster: ``forward(x[B, L, C]) -> y[B, H, C]`` and ``features(x) -> {name: tensor}``.
Both come from one ``forward_features`` pass, so distillation reads a prediction and its
hidden representations without running the network twice.

Capabilities are class attributes (``task``, ``uses_time_features``, ``distill_feature``);
the trainer and the distillers read them and never branch on a model's name.
Hyper-parameters are a nested ``Params`` dataclass per model: typed, with defaults, and
the only thing (with ``Dims``) needed to rebuild a model from its logged config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from tdml.config import coerce_dataclass
from tdml.contracts import Dims  # noqa: F401  (models are built from the data's Dims)
from tdml.registry import Registry


class TdmlModel(nn.Module):
    """Shared base: config round-trip and parameter counting."""

    task: ClassVar[str] = ""
    # Whether forward() can read x_mark/y_mark (calendar features); others ignore them.
    uses_time_features: ClassVar[bool] = False
    Params: ClassVar[type] = None  # each subclass defines a dataclass named Params
    registry_name: ClassVar[str] = ""

    def __init__(self, dims: Dims, params: Any):
        super().__init__()
        self.dims = dims
        self.params = params

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this architecture (weights are stored separately)."""
        return {
            "name": self.registry_name,
            "task": self.task,
            "dims": dataclasses.asdict(self.dims),
            "params": dataclasses.asdict(self.params),
        }

    def reads_marks(self) -> bool:
        """Whether this instance uses x_mark/y_mark: it can, its data had dates, and the
        ``use_time_features`` param (where a model has one) did not switch them off."""
        return (self.uses_time_features and self.dims.n_marks > 0
                and getattr(self.params, "use_time_features", True))

    def n_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


class Forecaster(TdmlModel):
    task: ClassVar[str] = "forecast"
    # The entry of features() a student aligns with in feature-level distillation.
    distill_feature: ClassVar[str] = "hidden"

    def forward_features(
        self, x: torch.Tensor, x_mark: torch.Tensor | None = None, y_mark: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x, x_mark=None, y_mark=None) -> torch.Tensor:
        return self.forward_features(x, x_mark, y_mark)[0]

    def features(self, x, x_mark=None, y_mark=None) -> dict[str, torch.Tensor]:
        return self.forward_features(x, x_mark, y_mark)[1]

    def feature_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each features() entry without the batch axis.

        The default runs one dummy batch on the model's device; models may override it
        with a closed form. The distiller builds its regressor from these shapes.
        """
        p = next(self.parameters())
        d = self.dims
        x = torch.zeros(2, d.seq_len, d.n_channels, device=p.device)
        xm = torch.zeros(2, d.seq_len, d.n_marks, device=p.device) if d.n_marks else None
        ym = torch.zeros(2, d.pred_len, d.n_marks, device=p.device) if d.n_marks else None
        was_training = self.training
        self.eval()
        with torch.no_grad():
            feats = self.features(x, xm, ym)
        self.train(was_training)
        return {k: tuple(v.shape[1:]) for k, v in feats.items()}


class Classifier(TdmlModel):
    """``forward(x[B, L, C]) -> logits[B, K]``; features() holds the hidden-state sequence."""

    task: ClassVar[str] = "classify"
    distill_feature: ClassVar[str] = "sequence"  # [B, L, hidden]

    def forward_features(self, x, x_mark=None, y_mark=None):
        raise NotImplementedError

    def forward(self, x, x_mark=None, y_mark=None) -> torch.Tensor:
        return self.forward_features(x, x_mark, y_mark)[0]

    def features(self, x, x_mark=None, y_mark=None) -> dict[str, torch.Tensor]:
        return self.forward_features(x, x_mark, y_mark)[1]

    feature_shapes = Forecaster.feature_shapes


MODELS: Registry[type[TdmlModel]] = Registry("model")


def register_model(name: str):
    """Class decorator: adds the model to MODELS and records its registry name."""

    def deco(cls):
        cls.registry_name = name
        return MODELS.register(name)(cls)

    return deco


def build_model(name: str, dims: Dims, params: dict[str, Any] | None = None) -> TdmlModel:
    """Instantiate a registered model; unknown or ill-typed params fail with the valid keys.
    Initialisation draws from torch's global generator: seed first for a reproducible model."""
    cls = MODELS.get(name)
    p = coerce_dataclass(cls.Params, params or {}, where=f"model {name!r} params")
    return cls(dims, p)


def model_from_config(cfg: dict[str, Any]) -> TdmlModel:
    """Rebuild an architecture from ``TdmlModel.config()`` output (no pickled code)."""
    return build_model(cfg["name"], Dims(**cfg["dims"]), cfg["params"])


__all__ = ["Dims", "TdmlModel", "Forecaster", "Classifier", "MODELS", "register_model", "build_model",
           "model_from_config"]
