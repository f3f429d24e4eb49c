"""What every run body shares (``tdml.runs``): its summary, the per-epoch logger, fit-then-score,
the data's params and inputs, the end of a teacher or student run written once (metrics,
diagnostics, publishing, registry tags, wall time), and the config sources it logs."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from tdml import precision, tracking
from tdml.config import DataConfig, flatten, to_dict
from tdml.promotion import DATA_TAG, data_settings, gate
from tdml.train import evaluate, fit, gather, predictions, resolve_device, score

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: str
    role: str
    model: str
    metrics: dict[str, float]
    n_params: int
    latency_ms: float
    registered: str | None = None  # models:/<name>/<version>
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_uri(self) -> str | None:
        """``models:/<name>/<version>`` of the registered model (None if nothing was registered)."""
        return self.registered

    @property
    def registered_name(self) -> str | None:
        """The registered model's name (None if nothing was registered)."""
        return self.registered.split("/")[1] if self.registered else None


class EpochLogger:
    """Per-epoch metrics to MLflow (train terms, validation metrics, lr)."""

    def __call__(self, epoch, train_terms, val_metrics, lr):
        tracking.log_metrics({**{f"train_{k}": v for k, v in train_terms.items()},
                              **{f"val_{k}": v for k, v in val_metrics.items()}, "lr": lr}, step=epoch)


@dataclass
class RunEnd:
    """What the shared end of a teacher or student run needs (``finish``)."""

    role: str
    name: str  # the model's registry name
    model: Any
    n_params: int
    latency_ms: float
    result: Any  # tdml.train.FitResult
    final: dict[str, float]  # metrics on the final split
    diagnosed: dict[str, Any]  # what the diagnostics compare ({"teacher": ..., "student": ...})
    settings: dict[str, Any]  # the loss's diagnostic settings
    meta: dict[str, Any]  # the registered model's metadata
    registered_name: str
    metrics: dict[str, float] = field(default_factory=dict)  # the role's own, logged with the rest
    extra: dict[str, Any] = field(default_factory=dict)  # RunSummary.extra


def finish(end: RunEnd, data, cfg, task, t0: float, mlflow_t0: float) -> RunSummary:
    """The end of every teacher / student run, written once: metrics (the final split's are
    logged with the registered model), diagnostics, publishing and its registry tags, wall time."""
    split, r = cfg.tracking.final_split, end.result
    final = {f"{split}_{k}": v for k, v in end.final.items()}
    metrics = {**final, **{f"best_val_{k}": v for k, v in r.best_val.items()}, "best_epoch": r.best_epoch,
               "epochs_run": r.epochs_run, "train_seconds": r.seconds, "cpu_latency_ms_b32": end.latency_ms,
               **end.metrics}
    tracking.log_metrics({k: v for k, v in metrics.items() if k not in final})
    if cfg.tracking.diagnostics and task.diagnose:
        metrics.update(diagnose(task, data, split, cfg.data.batch_size, end.diagnosed, end.settings,
                                 cfg.tracking.diagnostics_html))
    mv = publish(end.model, end.meta, end.registered_name, data, cfg, final, metrics, task)
    if mv:
        tracking.set_tags({"tdml.registered_model": mv.name, "tdml.registered_version": mv.version})
    log_wall(t0, mlflow_t0)
    return RunSummary(tracking.active_run_id(), end.role, end.name, metrics, end.n_params, end.latency_ms,
                      f"models:/{mv.name}/{mv.version}" if mv else None, mv.version if mv else None, end.extra)


def example_batch(data, batch_size: int = 32) -> dict:
    return next(iter(data.loader("val", batch_size)))  # inputs for timing only


def fit_and_test(objective, data, batch_size: int, cfg_train, extra_callbacks, final_split: str,
                 keep_predictions: bool = False):
    """Fit on train with validation checkpoints, then read ``final_split`` once: its metrics and,
    with ``keep_predictions``, the predictions they were scored from (None without), so that
    the diagnostics do not run the model over the split a second time (on Traffic's shape a
    teacher's pass over the test split takes longer than its capped training epoch)."""
    device = resolve_device(cfg_train.device)
    train = data.loader("train", batch_size, shuffle=True, seed=cfg_train.seed)
    result = fit(objective, train, data.loader("val", batch_size), cfg_train,
                 [EpochLogger(), *extra_callbacks], device)
    loader = data.loader(final_split, batch_size)
    if not keep_predictions:
        return result, evaluate(objective, loader, device)[0], None
    pred = predictions(objective, loader, device).pred
    return result, score(objective.task, pred, loader), pred


def log_inputs_and_data(data, final_split: str) -> None:
    """The data's params and hygiene tags; its splits as MLflow datasets: train and val always,
    test only for a run that reads it (never inside a search)."""
    described = data.describe()
    tracking.log_params({f"data.{k}": v for k, v in described.items()})
    if getattr(data, "hygiene", None):
        tracking.set_tags(data.hygiene.tags())
    splits = ("train", "val") + (("test",) if final_split == "test" else ())
    tracking.log_inputs(data, splits, described.get("source", data.name))


HEADLINE_LOSS = ("alpha", "beta", "temperature", "scales", "kl_mode", "weight")


def headline(cfg, data) -> dict[str, Any]:
    return {"dataset": data.name, "seq_len": data.dims.seq_len, "pred_len": data.dims.pred_len,
            "seed": cfg.train.seed}


def serving_example(model, data):
    """The logged model's input example, in the format it is served in: one raw (unscaled)
    window [1, L, C], or for a calendar-feature model that window as a frame with its dates."""
    scaler = data.meta().get("scaler") or {}
    mean, std = (np.asarray(scaler.get(k, d), np.float32) for k, d in (("mean", 0.0), ("std", 1.0)))
    if model.reads_marks():
        split, L = data.splits["val"], data.dims.seq_len
        frame = pd.DataFrame(split.values[:L].numpy() * std + mean, columns=data.columns).astype("float64")
        return frame.assign(date=split.dates[:L])[["date", *data.columns]]
    return example_batch(data, 1)["x"].numpy() * std + mean


def publish(model, meta: dict, name: str, data, cfg, final: dict[str, float], metrics: dict[str, float], task):
    """Log the model bundle with its final metrics, register it (when asked) and put it through
    the promotion gate: @challenger for the new version, the run's alias only if better on
    validation. Without ``tracking.log_model`` (trials of a study) only the metrics are logged."""
    track = cfg.tracking
    # Scored on validation (a study's trial), the final metrics share their names with the
    # per-epoch curve (val_mse, ...): logged one step after the last epoch, they are what MLflow
    # shows as the run's value (the latest step wins), i.e. the restored checkpoint's score that
    # Optuna sees, not the last epoch's.
    step = int(metrics.get("epochs_run", 0))
    if not track.log_model:
        tracking.log_metrics(final, step=step)
        return None
    mv = tracking.log_model(model, meta, name if track.register else None, serving_example(model, data), final,
                            {DATA_TAG: data_settings(to_dict(cfg.data))}, step=step)
    if mv is not None and track.alias:
        key = f"best_val_{task.monitor}"
        gate(mv.name, mv.version, metrics[key], key, task.mode, track.alias, track.promote)
    return mv


def log_wall(t0: float, mlflow_t0: float) -> None:
    """Wall time of the run body and the share of it spent in MLflow calls."""
    wall = time.perf_counter() - t0
    mlflow_s = tracking.tracking_seconds() - mlflow_t0
    tracking.log_metrics({"wall_seconds": wall, "mlflow_seconds": mlflow_s, "mlflow_share": mlflow_s / wall})


def log_sources(cfg, sources: dict[str, str]) -> None:
    """``config_sources.json``: each logged config value and the layer it came from (a config
    resolved before the run: every value "resolved by the caller")."""
    flat = flatten(to_dict(cfg))
    tracking.log_dict({k: {"value": v, "source": sources.get(k, "resolved by the caller")} for k, v in flat.items()},
                      "config_sources.json")


def resolved(cfg, data):
    """The config with the data's actual window lengths (the resolver fills a kind's defaults;
    only a condensed set's window is known from the data alone); a training precision the
    device cannot run is refused here, before any work (tdml.precision)."""
    precision.check(cfg.train.precision, resolve_device(cfg.train.device))
    d = data.dims
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seq_len=d.seq_len, pred_len=d.pred_len))


def diagnose(task, data, split: str, batch_size: int, models: dict, settings: dict[str, Any],
             html: bool = True) -> dict[str, float]:
    """Diagnostics of ground truth and each model on ``split``, logged as artifacts; a value of
    ``models`` is a model or its predictions on the split already computed; ``settings`` (the
    loss's ``diagnostic_settings()``) override the diagnostics' defaults (tau, scales)."""
    loader = data.loader(split, batch_size)
    series = {"ground_truth": gather((b["y"] for b in loader), getattr(loader, "n_windows", None)).numpy()}
    for name, m in models.items():
        series[name] = (m if isinstance(m, torch.Tensor) else predictions(m, loader).pred).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        summary = task.diagnose(series, data.columns, tmp, **settings, html=html,
                                title=f"FFT-period diagnostics: {data.name} ({split} split)")
        tracking.log_artifacts(tmp, "diagnostics")
    tracking.log_metrics(summary)
    return summary


def model_meta(data, data_cfg: DataConfig, task: str) -> dict[str, Any]:
    return {"task": task, **data.meta(), "data_config": to_dict(data_cfg),
            "run_id": tracking.active_run_id()}
