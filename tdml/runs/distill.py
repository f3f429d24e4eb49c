"""The distill run body: a student against a registered teacher, through any registered loss."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from tdml import tracking
from tdml.config import coerce_dataclass, to_dict
from tdml.data import load_data
from tdml.errors import ConfigError, IncompatibleTeacherError
from tdml.latency import cpu_latency_ms
from tdml.losses import LOSSES
from tdml.models import build_model
from tdml.resolve import Layers, resolve_distill
from tdml.runs.common import (HEADLINE_LOSS, RunEnd, RunSummary, example_batch, finish, fit_and_test, headline,
                              log_inputs_and_data, log_sources, model_meta, resolved)
from tdml.tasks import TASKS
from tdml.teacher_cache import teacher_outputs
from tdml.train import Distillation, predictions, resolve_device, score, seed_everything


TEACHER_REQUIRED = ("teacher is required: pass a registry URI such as "
                    "models:/etth1-itransformer-L720-H96@champion")


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
    cfg = resolved(cfg, data)
    tracking.log_params({"config": to_dict(cfg)})
    log_sources(cfg, sources)
    _check_teacher(teacher, meta, data)
    name = (f"student {cfg.student} alone (no teacher) · {mv.name} data" if cfg.method == "none" else
            f"student {cfg.student} ← {mv.name} v{mv.version} · {_method_label(cfg)}")
    tracking.name_run(name, ("student", "student alone", "student distilled"))
    loss_cls = LOSSES.get(cfg.method)
    loss_cfg = coerce_dataclass(loss_cls.Config, dict(cfg.loss), f"loss ({cfg.method})")
    seed_everything(cfg.train.seed)
    student = build_model(cfg.student, data.dims, cfg.student_params)
    if student.task != teacher.task:
        raise IncompatibleTeacherError(f"student {cfg.student!r} is a {student.task} model but the "
                                       f"teacher is a {teacher.task} model")
    loss = loss_cls.from_models(loss_cfg, student, teacher)  # registered in tdml.losses
    task = TASKS.get(student.task)
    tracking.log_params({"loss": dataclasses.asdict(loss_cfg), "student_params": dataclasses.asdict(student.params)})
    # top level: what people compare across runs (table columns, parallel coordinates)
    log_inputs_and_data(data, cfg.tracking.final_split)
    tracking.log_params({"method": cfg.method, "teacher": uri, "student": cfg.student, **headline(cfg, data),
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
    diagnosed = bool(cfg.tracking.diagnostics and task.diagnose)
    result, test, s_pred = fit_and_test(objective, data, cfg.data.batch_size, cfg.train, callbacks, split, diagnosed)
    # the frozen teacher's predictions on the scored split: once, from the cache when on (a
    # study's trials share the validation split's entry), for its metrics and the diagnostics
    t_pred = _teacher_predictions(teacher, mv, data, split, cfg)
    teacher_test = score(task, t_pred, data.loader(split, cfg.data.batch_size))
    example = example_batch(data)
    lat_s = cpu_latency_ms(student, example, repeats=cfg.tracking.latency_repeats)
    lat_t = _teacher_latency(teacher, mv, example, cfg.tracking)
    end = RunEnd("student", cfg.student, student, n_student, lat_s, result, test, {"teacher": t_pred, "student": s_pred},
                 loss.diagnostic_settings(),
                 {**model_meta(data, cfg.data, task.name), "teacher": {"name": mv.name, "version": mv.version}},
                 f"{mv.name}-student-{cfg.student}",
                 metrics={**{f"teacher_{split}_{k}": v for k, v in teacher_test.items()},
                          "teacher_cpu_latency_ms_b32": lat_t, "param_ratio": n_teacher / max(n_student, 1),
                          "speedup": lat_t / max(lat_s, 1e-9)},
                 extra={"teacher_latency_ms": lat_t, "teacher_n_params": n_teacher, "teacher_final": teacher_test,
                        "teacher_name": mv.name, "fit": result, "loss_config": loss_cfg, "loss_name": cfg.method})
    return finish(end, data, cfg, task, t0, mlflow_t0)


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
