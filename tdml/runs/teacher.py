"""The teacher run body: train a forecaster or classifier and register it."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from tdml import tracking
from tdml.config import TeacherRunConfig, to_dict
from tdml.data import load_data
from tdml.errors import TdmlError
from tdml.latency import cpu_latency_ms
from tdml.models import build_model
from tdml.resolve import Layers, resolve_teacher
from tdml.runs.common import (RunEnd, RunSummary, example_batch, finish, fit_and_test, headline, log_inputs_and_data,
                              log_sources, model_meta, resolved)
from tdml.tasks import TASKS
from tdml.train import Supervised, seed_everything


def train_teacher_in_run(cfg: TeacherRunConfig | Layers | dict[str, Any], callbacks=()) -> RunSummary:
    """A teacher run in the active MLflow run, from its settings (resolved here, with each
    value's source logged) or an already resolved config."""
    t0, mlflow_t0 = time.perf_counter(), tracking.tracking_seconds()
    sources: dict[str, str] = {}
    if not isinstance(cfg, TeacherRunConfig):
        cfg = resolve_teacher(cfg, sources)
    data = load_data(cfg.data)
    cfg = resolved(cfg, data)
    tracking.log_params({"config": to_dict(cfg)})
    log_sources(cfg, sources)
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
    tracking.log_params({"model": cfg.model, **headline(cfg, data)})
    log_inputs_and_data(data, cfg.tracking.final_split)
    tracking.log_metrics({"n_params": n_params})
    objective = Supervised(model, task)
    split = cfg.tracking.final_split
    diagnosed = bool(cfg.tracking.diagnostics and task.diagnose)
    result, test, pred = fit_and_test(objective, data, cfg.data.batch_size, cfg.train, callbacks, split, diagnosed)
    latency = cpu_latency_ms(model, example_batch(data), repeats=cfg.tracking.latency_repeats)
    end = RunEnd("teacher", cfg.model, model, n_params, latency, result, test, {"teacher": pred}, {},
                 model_meta(data, cfg.data, task.name), task.registered_name(data.name, cfg.model, data.dims))
    return finish(end, data, cfg, task, t0, mlflow_t0)
