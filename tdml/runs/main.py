"""The main job's run body: teacher -> registry -> the same student without and with
distillation (both through the teacher's alias), and its comparison table."""

from __future__ import annotations

from tdml import tracking
from tdml.config import deep_merge
from tdml.errors import TdmlError
from tdml.runs.common import RunSummary
from tdml.runs.distill import distill_in_run
from tdml.runs.teacher import train_teacher_in_run
from tdml.resolve import ENTRY_DEFAULTS, Layers, resolve_teacher


def run_main_in_run(raw_teacher: dict, raw_student: dict) -> str:
    """Teacher -> registry -> the same student without and with distillation, both through
    the teacher's alias, as nested runs; logs and returns the comparison table."""
    layers = Layers(entry=ENTRY_DEFAULTS["main"], explicit=raw_teacher)
    tcfg = resolve_teacher(layers)
    with tracking.start_run("", "teacher", "teacher", nested=True):
        t = train_teacher_in_run(layers)
    name = t.registered_name
    if name is None:
        raise TdmlError("the main job needs the teacher registered (tracking.register=true)")
    uri = f"models:/{name}@{tcfg.tracking.alias}"
    student = {**raw_student, "teacher": uri, "data": {"batch_size": tcfg.data.batch_size}}
    # the baseline registers nothing: the registered student is the distilled one
    alone_raw = {**deep_merge(student, {"method": "none", "tracking": {"register": False}}), "loss": {}}
    with tracking.start_run("", "student alone", "student", nested=True):
        alone = distill_in_run(alone_raw)
    with tracking.start_run("", "student distilled", "student", nested=True):
        s = distill_in_run(student)
    table, metrics = comparison(t, alone, s, tcfg.tracking.alias)
    tracking.log_text(table, "summary.md")
    tracking.log_metrics(metrics)
    from tdml.comparison import log_report  # plotly only when a report is written

    log_report(tracking.active_experiment_name(), name)  # this teacher's family, in this run's experiment
    return table


def comparison(t: RunSummary, alone: RunSummary, s: RunSummary, alias: str) -> tuple[str, dict[str, float]]:
    """The main job's table (teacher / student alone / student distilled) and its metrics."""
    rows = [("teacher", t), ("student alone (no teacher)", alone),
            (f"student distilled ({s.extra['loss_name']})", s)]
    lines = ["| run | model | test MSE | test MAE | parameters | CPU latency (ms, batch 32) |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {label} | {r.model} | {r.metrics['test_mse']:.4f} | {r.metrics['test_mae']:.4f} | "
              f"{r.n_params:,} | {r.latency_ms:.2f} |" for label, r in rows]
    mse = {k: r.metrics["test_mse"] for k, r in zip(("teacher", "alone", "student"), (t, alone, s))}
    vs_alone = mse["student"] / mse["alone"] - 1
    vs_teacher = mse["student"] / mse["teacher"] - 1
    lines += ["", f"distilled vs alone: {vs_alone:+.1%} test MSE; distilled vs teacher: {vs_teacher:+.1%} "
              f"test MSE; teacher vs alone: {mse['teacher'] / mse['alone'] - 1:+.1%}",
              f"teacher: {t.registered} (alias @{alias}); student: {s.registered}; "
              f"{t.n_params / max(s.n_params, 1):.1f}x fewer parameters, "
              f"{t.latency_ms / max(s.latency_ms, 1e-9):.1f}x faster on CPU"]
    metrics = {f"{k}_test_mse": v for k, v in mse.items()}
    metrics.update({f"{k}_test_mae": r.metrics["test_mae"] for k, r in (("teacher", t), ("alone", alone), ("student", s))})
    metrics.update({"student_vs_alone_mse_change": vs_alone, "student_vs_teacher_mse_change": vs_teacher})
    return "\n".join(lines), metrics
