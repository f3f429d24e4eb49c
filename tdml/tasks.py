"""Task definitions: what "the target loss" and "the metrics" mean for a kind of model.

The trainer and the pipelines ask the task of a model (its ``task`` class attribute)
for these, so neither ever branches on a task or model name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F

from tdml.registry import Registry

# Which way a score is better, in one vocabulary for every comparison tdml makes (checkpoints,
# teacher selection, the promotion gate, a study's final candidates); Optuna's own
# "minimize"/"maximize" appear only where a study spec talks to Optuna (``ObjectiveSpec.mode``).
Mode = Literal["min", "max"]


def better(a: float, b: float, mode: Mode) -> bool:
    """Whether score ``a`` is strictly better than ``b`` (a NaN is never better, nor beaten)."""
    return a < b if mode == "min" else a > b


class MetricAccumulator:
    """Collects predictions and targets of an evaluation pass; ``result()`` gives the task's
    metrics over all of them (for metrics that need every prediction: AUC-PRC, accuracy)."""

    def __init__(self, metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]):
        self.metrics = metrics
        self.preds: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def add(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.preds.append(pred.detach().float().cpu())
        self.targets.append(target.detach().cpu())

    def result(self) -> dict[str, float]:
        return self.metrics(torch.cat(self.preds), torch.cat(self.targets))


class ErrorSums:
    """MSE and MAE of an evaluation pass from float64 sums per batch: no prediction is kept,
    so scoring a split of [N, H, C] windows costs one batch of memory (Electricity's test
    split is 1.3 GB of predictions and targets). Equal to ``forecast_metrics`` over the
    concatenation up to float64 summation order."""

    def __init__(self):
        self.sq, self.abs, self.n = 0.0, 0.0, 0

    def add(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        err = pred.detach().double() - target.detach().double()
        self.sq += float(err.square().sum())
        self.abs += float(err.abs().sum())
        self.n += err.numel()

    def result(self) -> dict[str, float]:
        return {"mse": self.sq / self.n, "mae": self.abs / self.n}


@dataclass(frozen=True)
class Task:
    name: str
    target_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # training loss vs ground truth
    metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]  # over a whole split
    monitor: str  # validation metric that picks checkpoints and trials
    mode: Mode
    registered_name: Callable[[str, str, Any], str]  # (dataset, model, dims) -> registry name
    # Dims fields a teacher and a student run must agree on.
    compatible_dims: tuple[str, ...] = ()
    diagnose: Callable[..., dict[str, float]] | None = None  # writes diagnostics artifacts
    # how an evaluation pass gathers what ``metrics`` needs (None: every prediction, kept)
    accumulator: Callable[[], Any] | None = None
    # What a distill run of a teacher of this task trains when the user names neither.
    default_student: str = ""
    default_method: str = ""

    def better(self, a: float, b: float) -> bool:
        return better(a, b, self.mode)

    def new_accumulator(self):
        return self.accumulator() if self.accumulator else MetricAccumulator(self.metrics)


def forecast_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """MSE and MAE over every window, step and channel (scaled data, as in the literature)."""
    err = pred.double() - target.double()
    return {"mse": float((err**2).mean()), "mae": float(err.abs().mean())}


def classification_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    from tdml.metrics import classification_metrics as metrics  # scikit-learn only when used

    return metrics(pred, target)


def _classify_name(dataset: str, model: str, dims) -> str:
    return f"ucr-{dataset.lower()}-{model}"


def _forecast_name(dataset: str, model: str, dims) -> str:
    return f"{dataset}-{model}-L{dims.seq_len}-H{dims.pred_len}"


def _fft_diagnostics(*args, **kwargs):
    from tdml.diagnostics import fft_diagnostics  # plotly import only when used

    return fft_diagnostics(*args, **kwargs)


TASKS: Registry[Task] = Registry("task")
TASKS.register("forecast")(Task(
    "forecast", F.mse_loss, forecast_metrics, monitor="mse", mode="min",
    registered_name=_forecast_name, compatible_dims=("n_channels", "seq_len", "pred_len"),
    diagnose=_fft_diagnostics, default_student="mlp", default_method="timedistill", accumulator=ErrorSums,
))
# docs/methods.md §2.2: checkpoints by validation loss (cross-entropy); studies rank by AUC-PRC.
TASKS.register("classify")(Task(
    "classify", F.cross_entropy, classification_metrics, monitor="ce", mode="min",
    registered_name=_classify_name, compatible_dims=("n_channels", "seq_len", "n_classes"),
    default_student="lstm_student", default_method="memkd",
))
