"""The one training engine, for teachers and students alike.

``fit`` optimises an ``Objective`` (batch -> named loss terms) with Adam, the configured
lr schedule and early stopping on the task's validation metric, then restores the best
checkpoint. It never sees the test split; callers evaluate test once, after fitting.
"""

from __future__ import annotations

import copy
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from tdml import precision
from tdml.config import TrainConfig
from tdml.data.batching import INDEX
from tdml.contracts import ModelOutput, run_model
from tdml.losses.base import weighted_sum
from tdml.runstate import check_stop
from tdml.schedules import schedule
from tdml.tasks import Task

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so the same seed gives the same run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """The one place a device is chosen: CUDA when present (for 'auto'), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class Objective(nn.Module):
    """What the engine optimises. ``terms`` must include 'loss'; ``predict`` is what is evaluated."""

    task: Task

    def terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class Supervised(Objective):
    """Plain training of one model against the ground truth (teachers, non-distilled baselines)."""

    def __init__(self, model: nn.Module, task: Task):
        super().__init__()
        self.model, self.task = model, task

    def terms(self, batch):
        pred = run_model(self.model, batch).pred
        return {"loss": self.task.target_loss(precision.full(pred), batch["y"])}

    def predict(self, batch):
        return run_model(self.model, batch).pred


class Distillation(Objective):
    """Student trained on ``target_weight * task loss + weighted distillation terms``.

    The teacher is frozen and always in eval mode; its forward runs without autograd.
    The loss module's own parameters (e.g. TimeDistill's regressor) train with the student.
    With ``cached`` (``tdml.teacher_cache``: the train split's teacher outputs, computed once)
    a training batch's teacher outputs are looked up by window index instead of recomputed;
    ``terms`` is only ever called on training batches (``fit``).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, loss: nn.Module,
                 weights: dict[str, float], task: Task, target_weight: float = 1.0, cached=None):
        super().__init__()
        self.cached = cached
        self.student, self.loss, self.task = student, loss, task
        self.weights, self.target_weight = dict(weights), target_weight
        teacher.requires_grad_(False)
        teacher.eval()
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: excluded from state/params
        self._needs_teacher = any(w != 0 for w in self.weights.values())

    @property
    def teacher(self) -> nn.Module:
        return self._teacher

    def to(self, *args, **kwargs):
        self._teacher.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def terms(self, batch):
        s = run_model(self.student, batch)
        out = {"gt": self.task.target_loss(precision.full(s.pred), batch["y"])}
        if self._needs_teacher:
            if self.cached is not None and INDEX in batch and self.training:
                t = self.cached.lookup(batch[INDEX], batch["x"].device)
            else:
                with torch.no_grad():
                    t = run_model(self._teacher, batch)
            out.update(self.loss(s, t, batch["y"]))
        out["loss"] = weighted_sum(out, {**self.weights, "gt": self.target_weight})
        return out

    def predict(self, batch):
        return run_model(self.student, batch).pred


class Callback(Protocol):
    def __call__(self, epoch: int, train_terms: dict[str, float], val_metrics: dict[str, float],
                 lr: float) -> None: ...


@dataclass
class FitResult:
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


@torch.no_grad()
def evaluate(objective: Objective, loader: Iterable[dict], device: torch.device | None = None):
    """Task metrics of ``objective.predict`` over a whole loader (every window, no drop), and
    the task's accumulator they came from (``Task.new_accumulator``)."""
    device = device or next(objective.parameters()).device
    was_training = objective.training
    objective.eval()
    acc = objective.task.new_accumulator()
    for batch in loader:
        batch = to_device(batch, device)
        acc.add(objective.predict(batch), batch["y"])
    objective.train(was_training)
    return acc.result(), acc


def score(task: Task, pred: torch.Tensor, loader: Iterable[dict]) -> dict[str, float]:
    """A split's metrics of predictions already made (loader order), against its targets batch
    by batch through the task's accumulator: no second copy of a wide split."""
    acc, i = task.new_accumulator(), 0
    for b in loader:
        acc.add(pred[i:i + len(b["y"])], b["y"])
        i += len(b["y"])
    return acc.result()


def optimizer(params: list[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (default) or SGD with momentum, fused where every parameter allows it (float on CPU
    or CUDA): one kernel per step instead of a dozen per tensor -- 3x faster on CPU, which matters
    for a student and a TimeDistill regressor of ~0.8 M parameters whose steps take milliseconds.
    Same update rule."""
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) or None
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def fit(objective: Objective, train_loader, val_loader, cfg: TrainConfig,
        callbacks: Iterable[Callback] = (), device: torch.device | None = None) -> FitResult:
    device = device or resolve_device(cfg.device)
    objective.to(device)
    params = [p for p in objective.parameters() if p.requires_grad]
    opt = optimizer(params, cfg)
    precision.check(cfg.precision, device)
    scaler = precision.grad_scaler(cfg.precision, device)
    task = objective.task
    lr_of = schedule(cfg)
    best_state, best_val, best_epoch, bad_epochs = None, None, -1, 0
    result = FitResult(best_epoch=-1, best_val={})
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        lr = lr_of.lr(epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        objective.train()
        sums: dict[str, float] = {}
        n = 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not cfg.progress, file=sys.stderr, mininterval=1.0)
        for i, batch in enumerate(bar):
            if cfg.max_batches and i >= cfg.max_batches:
                break
            check_stop()  # a stop signal some library call swallowed still ends the run here
            batch = to_device(batch, device)
            with precision.autocast(cfg.precision, device):
                terms = objective.terms(batch)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}, batch {i}: "
                                         f"{ {k: float(v) for k, v in terms.items()} }; lower lr")
            opt.zero_grad(set_to_none=True)
            _step(loss, opt, params, cfg.grad_clip, scaler)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
        train_terms = {k: v / max(n, 1) for k, v in sums.items()}
        val_metrics, _ = evaluate(objective, val_loader, device)
        result.history.append({"epoch": epoch, "lr": lr, **{f"train_{k}": v for k, v in train_terms.items()},
                               **{f"val_{k}": v for k, v in val_metrics.items()}})
        score = val_metrics[task.monitor]
        improved = best_val is None or task.better(score, best_val[task.monitor])
        if improved:
            best_val, best_epoch, bad_epochs = dict(val_metrics), epoch, 0
            best_state = copy.deepcopy(objective.state_dict())
        else:
            bad_epochs += 1
        lr_of.observe(improved)
        log.info("epoch %d: train %s | val %s%s", epoch + 1, _fmt(train_terms), _fmt(val_metrics),
                 " *" if improved else "")
        for cb in callbacks:
            cb(epoch, train_terms, val_metrics, lr)
        result.epochs_run = epoch + 1
        if bad_epochs >= cfg.patience:
            result.stopped_early = True
            break
    if cfg.checkpoint == "best":
        objective.load_state_dict(best_state)
    else:  # the last epoch's weights are kept; its validation metrics are what they score
        best_epoch, best_val = result.epochs_run - 1, dict(val_metrics)
    result.best_epoch, result.best_val = best_epoch, best_val
    result.seconds = time.perf_counter() - t0
    return result


def _step(loss: torch.Tensor, opt, params, grad_clip: float, scaler: torch.amp.GradScaler) -> None:
    """Backward and update through the gradient scaler (a pass-through unless fp16: then the
    loss is scaled, the step skipped on overflow, clipping acts on unscaled gradients)."""
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()


def _fmt(d: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in d.items())


def gather(parts: Iterable[torch.Tensor], n: int | None) -> torch.Tensor:
    """Batches stacked along dim 0. With the total ``n`` known (a loader's ``n_windows``) they
    are written into one preallocated tensor: a list of batches and their concatenation would
    hold a split twice, which at Electricity's width is the end of a run's memory peak
    (docs/results.md)."""
    if n is None:
        return torch.cat(list(parts))
    out, i = None, 0
    for part in parts:
        if out is None:
            out = part.new_empty((n, *part.shape[1:]))
        out[i:i + len(part)] = part
        i += len(part)
    return out[:i]


def predictions(model: nn.Module, loader, device: torch.device | None = None) -> ModelOutput:
    """A model's (or an ``Objective``'s: what it ``predict``s) predictions over a loader
    (features not kept), gathered without a second copy."""
    device = device or next(model.parameters()).device
    model.eval()
    predict = model.predict if isinstance(model, Objective) else (lambda b: run_model(model, b).pred)
    with torch.no_grad():
        preds = (predict(to_device(batch, device)).cpu() for batch in loader)
        return ModelOutput(gather(preds, getattr(loader, "n_windows", None)))


__all__ = ["seed_everything", "resolve_device", "Objective", "Supervised", "Distillation", "fit",
           "evaluate", "score", "FitResult", "predictions", "gather"]
