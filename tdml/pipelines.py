"""The runs behind the entry points: train a teacher, distil a student, the main demo.

Each ``run_*`` opens an MLflow run and calls the matching ``*_in_run`` body; the CLI does
the same. Configs are resolved by ``tdml.resolve`` *inside* the run, so bad input becomes a
FAILED run with its reason. Bodies expect an active run.
"""

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
from tdml.config import DataConfig, TeacherRunConfig, coerce_dataclass, flatten, to_dict
from tdml.data import load_data
from tdml.losses import LOSSES
from tdml.errors import ConfigError, IncompatibleTeacherError, TdmlError
from tdml.latency import cpu_latency_ms
from tdml.models import build_model
from tdml.promotion import DATA_TAG, data_settings, gate
from tdml.resolve import Layers, resolve_distill, resolve_teacher
from tdml.runstate import global_rng
from tdml.tasks import TASKS
from tdml.teacher_cache import teacher_outputs
from tdml.train import (Distillation, Supervised, evaluate, fit, predictions, resolve_device, score,
                        seed_everything)

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


def _example_batch(data, batch_size: int = 32) -> dict:
    return next(iter(data.loader("val", batch_size)))  # inputs for timing only


def _fit_and_test(objective, data, batch_size: int, cfg_train, extra_callbacks, final_split: str):
    """Fit on train with validation checkpoints, then read ``final_split`` once."""
    device = resolve_device(cfg_train.device)
    train = data.loader("train", batch_size, shuffle=True, seed=cfg_train.seed)
    result = fit(objective, train, data.loader("val", batch_size), cfg_train,
                 [EpochLogger(), *extra_callbacks], device)
    final_metrics, _ = evaluate(objective, data.loader(final_split, batch_size), device)
    return result, final_metrics


def train_teacher_in_run(cfg: TeacherRunConfig | Layers | dict[str, Any], callbacks=()) -> RunSummary:
    """A teacher run in the active MLflow run, from its settings (resolved here, with each
    value's source logged) or an already resolved config."""
    t0, mlflow_t0 = time.perf_counter(), tracking.tracking_seconds()
    sources: dict[str, str] = {}
    if not isinstance(cfg, TeacherRunConfig):
        cfg = resolve_teacher(cfg, sources)
    data = load_data(cfg.data)
    cfg = _resolved(cfg, data)
    tracking.log_params({"config": to_dict(cfg)})
    log_sources(cfg, sources)
    with global_rng():  # seed, then initialise, as one step: parallel trials share the generator
        seed_everything(cfg.train.seed)
        model = build_model(cfg.model, data.dims, cfg.model_params)
    task = TASKS.get(model.task)
    if model.task != data.task:
        raise TdmlError(f"model {cfg.model!r} is a {model.task} model but dataset {data.name!r} is "
                        f"a {data.task} dataset; pick a {data.task} model")
    n_params = model.n_parameters()
    d = data.dims
    window = f" L{d.seq_len}-H{d.pred_len}" if task.name == "forecast" else ""
    tracking.name_run(f"teacher {cfg.model} {data.name}{window}", ("teacher", f"teacher-{cfg.model}"))
    tracking.log_params({"model_params": dataclasses.asdict(model.params)})
    tracking.log_params({"model": cfg.model, **_headline(cfg, data)})
    _log_inputs(data, cfg.tracking.final_split)
    tracking.log_metrics({"n_params": n_params})
    objective = Supervised(model, task)
    split = cfg.tracking.final_split
    result, test = _fit_and_test(objective, data, cfg.data.batch_size, cfg.train, callbacks, split)
    latency = cpu_latency_ms(model, _example_batch(data), repeats=cfg.tracking.latency_repeats)
    metrics = {**{f"{split}_{k}": v for k, v in test.items()},
               **{f"best_val_{k}": v for k, v in result.best_val.items()},
               "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "train_seconds": result.seconds, "cpu_latency_ms_b32": latency}
    final = {f"{split}_{k}": v for k, v in test.items()}
    tracking.log_metrics({k: v for k, v in metrics.items() if k not in final})
    if cfg.tracking.diagnostics and task.diagnose:
        metrics.update(_diagnose(task, data, split, cfg.data.batch_size, {"teacher": model}, {},
                                 cfg.tracking.diagnostics_html))
    mv = _publish(model, _model_meta(data, cfg.data, task.name), task.registered_name(data.name, cfg.model, data.dims),
                  data, cfg, final, metrics, task)
    _log_wall(t0, mlflow_t0)
    summary = RunSummary(tracking.active_run_id(), "teacher", cfg.model, metrics, n_params, latency,
                         f"models:/{mv.name}/{mv.version}" if mv else None, mv.version if mv else None)
    if mv:
        tracking.set_tags({"tdml.registered_model": mv.name, "tdml.registered_version": mv.version})
    return summary


def distill_in_run(layers: Layers | dict[str, Any], callbacks=()) -> RunSummary:
    """Distil a student from the teacher the settings name (``teacher: models:/...``).

    The teacher's registered metadata is read first, then the config is resolved once
    (``tdml.resolve``): data settings are the teacher's own under whatever the layers set,
    so ``-P teacher=...`` alone is a complete run with that dataset's defaults.
    """
    t0 = time.perf_counter()
    mlflow_t0 = tracking.tracking_seconds()
    layers = layers if isinstance(layers, Layers) else Layers(explicit=layers)
    uri = layers.merged().get("teacher") or ""
    if not uri:
        raise ConfigError(TEACHER_REQUIRED)
    teacher, meta, mv = tracking.load_model(uri)
    tracking.set_tags({"tdml.teacher_uri": uri, "tdml.teacher_name": mv.name,
                       "tdml.teacher_version": mv.version, "tdml.teacher_run_id": mv.run_id or ""})
    sources: dict[str, str] = {}
    cfg = resolve_distill(layers, meta, sources)
    data = load_data(cfg.data)
    cfg = _resolved(cfg, data)
    tracking.log_params({"config": to_dict(cfg)})
    log_sources(cfg, sources)
    _check_teacher(teacher, meta, data)
    name = (f"student {cfg.student} alone (no teacher) · {mv.name} data" if cfg.method == "none" else
            f"student {cfg.student} ← {mv.name} v{mv.version} · {_method_label(cfg)}")
    tracking.name_run(name, ("student", "student alone", "student distilled"))
    loss_cls = LOSSES.get(cfg.method)
    loss_cfg = coerce_dataclass(loss_cls.Config, dict(cfg.loss), f"loss ({cfg.method})")
    with global_rng():  # seed, then initialise student and loss, as one step (parallel trials)
        seed_everything(cfg.train.seed)
        student = build_model(cfg.student, data.dims, cfg.student_params)
        if student.task != teacher.task:
            raise IncompatibleTeacherError(f"student {cfg.student!r} is a {student.task} model but the "
                                           f"teacher is a {teacher.task} model")
        loss = loss_cls.from_models(loss_cfg, student, teacher)  # registered in tdml.losses
    task = TASKS.get(student.task)
    tracking.log_params({"loss": dataclasses.asdict(loss_cfg), "student_params": dataclasses.asdict(student.params)})
    # top level: what people compare across runs (table columns, parallel coordinates)
    _log_inputs(data, cfg.tracking.final_split)
    tracking.log_params({"method": cfg.method, "teacher": uri, "student": cfg.student, **_headline(cfg, data),
                         **{k: v for k, v in dataclasses.asdict(loss_cfg).items() if k in HEADLINE_LOSS}})
    n_student, n_teacher = student.n_parameters(), teacher.n_parameters()
    tracking.log_metrics({"n_params": n_student, "teacher_n_params": n_teacher})
    cached = None
    if any(w != 0 for w in loss.weights().values()):
        t_cache = time.perf_counter()
        cached = teacher_outputs(teacher, f"{mv.name}/{mv.version}/{mv.run_id}", data, "train",
                                 loss.teacher_features(), cfg.data.batch_size, resolve_device(cfg.train.device),
                                 cfg.teacher_cache, cfg.teacher_cache_dtype)
        tracking.set_tags({"tdml.teacher_cache": f"{cfg.teacher_cache}: {cached.source}" if cached else "recompute"})
        tracking.log_metrics({"teacher_cache_seconds": time.perf_counter() - t_cache})
    objective = Distillation(student, teacher, loss, loss.weights(), task, cfg.target_weight, cached)
    split = cfg.tracking.final_split
    result, test = _fit_and_test(objective, data, cfg.data.batch_size, cfg.train, callbacks, split)
    # the frozen teacher's predictions on the scored split: once, from the cache when on (a
    # study's trials share the validation split's entry), for its metrics and the diagnostics
    t_pred = _teacher_predictions(teacher, mv, data, split, cfg)
    teacher_test = score(task, t_pred, data.loader(split, cfg.data.batch_size))
    example = _example_batch(data)
    lat_s = cpu_latency_ms(student, example, repeats=cfg.tracking.latency_repeats)
    lat_t = _teacher_latency(teacher, mv, example, cfg.tracking)
    metrics = {**{f"{split}_{k}": v for k, v in test.items()},
               **{f"teacher_{split}_{k}": v for k, v in teacher_test.items()},
               **{f"best_val_{k}": v for k, v in result.best_val.items()},
               "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "train_seconds": result.seconds, "cpu_latency_ms_b32": lat_s,
               "teacher_cpu_latency_ms_b32": lat_t, "param_ratio": n_teacher / max(n_student, 1),
               "speedup": lat_t / max(lat_s, 1e-9)}
    final = {f"{split}_{k}": v for k, v in test.items()}
    tracking.log_metrics({k: v for k, v in metrics.items() if k not in final})
    if cfg.tracking.diagnostics and task.diagnose:
        metrics.update(_diagnose(task, data, split, cfg.data.batch_size, {"teacher": t_pred, "student": student},
                                 loss.diagnostic_settings(), cfg.tracking.diagnostics_html))
    smeta = {**_model_meta(data, cfg.data, task.name), "teacher": {"name": mv.name, "version": mv.version}}
    smv = _publish(student, smeta, f"{mv.name}-student-{cfg.student}", data, cfg, final, metrics, task)
    if smv:
        tracking.set_tags({"tdml.registered_model": smv.name, "tdml.registered_version": smv.version})
    _log_wall(t0, mlflow_t0)
    return RunSummary(tracking.active_run_id(), "student", cfg.student, metrics, n_student, lat_s,
                      f"models:/{smv.name}/{smv.version}" if smv else None, smv.version if smv else None,
                      extra={"teacher_latency_ms": lat_t, "teacher_n_params": n_teacher,
                             "teacher_final": teacher_test, "teacher_name": mv.name,
                             "fit": result, "loss_config": loss_cfg, "loss_name": cfg.method})


def _log_inputs(data, final_split: str) -> None:
    """The data's params and hygiene tags; its splits as MLflow datasets: train and val always,
    test only for a run that reads it (never inside a search)."""
    described = data.describe()
    tracking.log_params({f"data.{k}": v for k, v in described.items()})
    if getattr(data, "hygiene", None):
        tracking.set_tags(data.hygiene.tags())
    splits = ("train", "val") + (("test",) if final_split == "test" else ())
    tracking.log_inputs(data, splits, described.get("source", data.name))


HEADLINE_LOSS = ("alpha", "beta", "temperature", "scales", "kl_mode", "weight")


def _headline(cfg, data) -> dict[str, Any]:
    return {"dataset": data.name, "seq_len": data.dims.seq_len, "pred_len": data.dims.pred_len,
            "seed": cfg.train.seed}


def _serving_example(model, data):
    """The logged model's input example, in the format it is served in: one raw (unscaled)
    window [1, L, C], or for a calendar-feature model that window as a frame with its dates."""
    scaler = data.meta().get("scaler") or {}
    mean, std = (np.asarray(scaler.get(k, d), np.float32) for k, d in (("mean", 0.0), ("std", 1.0)))
    if model.reads_marks():
        split, L = data.splits["val"], data.dims.seq_len
        frame = pd.DataFrame(split.values[:L].numpy() * std + mean, columns=data.columns).astype("float64")
        return frame.assign(date=split.dates[:L])[["date", *data.columns]]
    return _example_batch(data, 1)["x"].numpy() * std + mean


def _teacher_latency(teacher, mv, example, track) -> float:
    """The teacher's CPU latency as its own run logged it (same window shape and batch: the
    teacher fits the data), re-measured only if asked or missing -- minutes for heavy teachers."""
    logged = tracking.run_metrics(mv.run_id).get("cpu_latency_ms_b32") if mv.run_id else None
    if logged is not None and not track.remeasure_teacher_latency:
        tracking.set_tags({"tdml.teacher_latency_source": f"teacher run {mv.run_id}"})
        return float(logged)
    tracking.set_tags({"tdml.teacher_latency_source": "measured"})
    return cpu_latency_ms(teacher, example, repeats=track.latency_repeats)


def _method_label(cfg) -> str:
    """e.g. 'timedistill α=2 β=2' -- the weights people compare, in the run name."""
    shown = {"alpha": "α", "beta": "β", "weight": "λd"}
    weights = " ".join(f"{sym}={cfg.loss[k]:g}" for k, sym in shown.items() if k in cfg.loss)
    return f"{cfg.method} {weights}".strip()


def _publish(model, meta: dict, name: str, data, cfg, final: dict[str, float], metrics: dict[str, float], task):
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
    mv = tracking.log_model(model, meta, name if track.register else None, _serving_example(model, data), final,
                            {DATA_TAG: data_settings(to_dict(cfg.data))}, step=step)
    if mv is not None and track.alias:
        key = f"best_val_{task.monitor}"
        gate(mv.name, mv.version, metrics[key], key, task.mode, track.alias, track.promote)
    return mv


def _log_wall(t0: float, mlflow_t0: float) -> None:
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


def _resolved(cfg, data):
    """The config with the data's actual window lengths (the resolver fills a kind's defaults;
    only a condensed set's window is known from the data alone); a training precision the
    device cannot run is refused here, before any work (tdml.precision)."""
    precision.check(cfg.train.precision, resolve_device(cfg.train.device))
    d = data.dims
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seq_len=d.seq_len, pred_len=d.pred_len))


def _check_teacher(teacher, meta: dict, data) -> None:
    """Refuse a teacher whose task or shapes differ from the requested data; say what differs."""
    diffs = []
    if teacher.task != data.task:
        diffs.append(f"task: teacher {teacher.task}, data {data.task}")
    else:
        fields = TASKS.get(teacher.task).compatible_dims
        if getattr(teacher, "uses_time_features", False):
            fields = (*fields, "n_marks")
        for f in fields:
            tv, dv = getattr(teacher.dims, f), getattr(data.dims, f)
            if tv != dv:
                diffs.append(f"{f}: teacher {tv}, requested {dv}")
    if diffs:
        raise IncompatibleTeacherError(
            f"teacher {meta.get('dataset', '?')}/{meta['model']['name']} does not fit dataset "
            f"{data.name!r}: " + "; ".join(diffs) + ". Use a teacher trained with these settings, "
            "or drop the conflicting -P values to inherit the teacher's.")
    if meta.get("dataset") != data.name:
        tracking.set_tags({"tdml.warning": f"teacher trained on {meta.get('dataset')!r}, "
                                           f"distilling on {data.name!r}"})


def _teacher_predictions(teacher, mv, data, split: str, cfg) -> torch.Tensor:
    """The teacher's predictions on ``split`` in loader order ([N, ...], float32, CPU)."""
    held = teacher_outputs(teacher, f"{mv.name}/{mv.version}/{mv.run_id}", data, split, (), cfg.data.batch_size,
                           resolve_device(cfg.train.device), cfg.teacher_cache, cfg.teacher_cache_dtype)
    if held is not None:
        return held.pred
    return predictions(teacher, data.loader(split, cfg.data.batch_size), resolve_device(cfg.train.device)).pred


def _diagnose(task, data, split: str, batch_size: int, models: dict, settings: dict[str, Any],
              html: bool = True) -> dict[str, float]:
    """Diagnostics of ground truth and each model on ``split``, logged as artifacts; a value of
    ``models`` is a model or its predictions on the split already computed; ``settings`` (the
    loss's ``diagnostic_settings()``) override the diagnostics' defaults (tau, scales)."""
    loader = data.loader(split, batch_size)
    series = {"ground_truth": torch.cat([b["y"] for b in loader]).numpy()}
    for name, m in models.items():
        series[name] = (m if isinstance(m, torch.Tensor) else predictions(m, loader).pred).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        summary = task.diagnose(series, data.columns, tmp, **settings, html=html,
                                title=f"FFT-period diagnostics: {data.name} ({split} split)")
        tracking.log_artifacts(tmp, "diagnostics")
    tracking.log_metrics(summary)
    return summary


def _model_meta(data, data_cfg: DataConfig, task: str) -> dict[str, Any]:
    return {"task": task, **data.meta(), "data_config": to_dict(data_cfg),
            "run_id": tracking.active_run_id()}


TEACHER_REQUIRED = ("teacher is required: pass a registry URI such as "
                    "models:/etth1-itransformer-L720-H96@champion")
