"""The teacher-vs-student comparison report of an experiment (``tdml report``).

One row per finished teacher or student run that read its test split: test error, size, CPU
latency, and what it is (model, dataset, window, method, teacher, loss weights), as
``report.csv``; and ``report.html``: a plotly Pareto view of error vs CPU latency and vs
parameters, the non-dominated runs joined by a line (plotly.js embedded once). Logged as
artifacts of a ``report`` run, and by the main job and every study parent into their own run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from tdml import tracking
from tdml.errors import ConfigError

# (metric, higher is better): the first one any row has is the report's error axis
PRIMARY = (("test_mse", False), ("test_auc_prc", True))
METRICS = ("test_mse", "test_mae", "test_auc_prc", "test_auc_roc", "test_accuracy", "n_params",
           "cpu_latency_ms_b32", "best_val_mse", "best_val_ce")
PARAMS = ("model", "student", "dataset", "seq_len", "pred_len", "method", "teacher", "alpha", "beta",
          "temperature", "scales", "kl_mode", "weight", "seed")
COLORS = {"teacher": "#1f77b4", "student": "#d62728"}
ROLES = {"teacher": "teacher", "student": "student", "final": "student"}  # a study's final run is a student


def collect(experiment: str, family: str = "") -> pd.DataFrame:
    """The experiment's finished teacher/student runs with test metrics; ``family`` keeps the
    runs registered under a name starting with it, or distilled from such a teacher (one
    teacher and all its students, registered or not)."""
    rows = []
    for run in tracking.experiment_runs(experiment):
        tags, m, p = run.data.tags, run.data.metrics, run.data.params
        if tags.get(tracking.ROLE_TAG) not in ROLES or run.info.status != "FINISHED":
            continue
        if not any(k in m for k, _ in PRIMARY):
            continue  # a search trial (validation only) or a run without a final split
        registered = tags.get("tdml.registered_model", "")
        if family and not (registered.startswith(family) or p.get("teacher", "").startswith(f"models:/{family}")):
            continue
        rows.append({"run_id": run.info.run_id, "run_name": run.info.run_name, "role": ROLES[tags[tracking.ROLE_TAG]],
                     "registered_model": registered, "version": tags.get("tdml.registered_version", ""),
                     **{k: p.get(k, "") for k in PARAMS}, **{k: m.get(k) for k in METRICS}})
    return pd.DataFrame(rows, columns=["run_id", "run_name", "role", "registered_model", "version",
                                       *PARAMS, *METRICS])


def primary_metric(df: pd.DataFrame) -> tuple[str, bool]:
    for metric, higher in PRIMARY:
        if metric in df and df[metric].notna().any():
            return metric, higher
    raise ConfigError("no run of this report logged a test metric (test_mse or test_auc_prc)")


def pareto(df: pd.DataFrame, x: str, y: str, higher: bool) -> pd.DataFrame:
    """Rows not dominated on (smaller ``x``, better ``y``), sorted by ``x``."""
    d = df.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, not higher])
    best, keep = None, []
    for i, v in zip(d.index, d[y]):
        if best is None or (v > best if higher else v < best):
            best = v
            keep.append(i)
    return d.loc[keep]


def write(df: pd.DataFrame, out: Path, title: str) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "report.csv", index=False)
    y, higher = primary_metric(df)
    axes = (("cpu_latency_ms_b32", "CPU latency (ms, batch 32, 1 thread)"), ("n_params", "parameters"))
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{y} vs {label}" for _, label in axes])
    for c, (x, label) in enumerate(axes, start=1):
        for role, g in df.groupby("role"):
            fig.add_trace(go.Scatter(x=g[x], y=g[y], mode="markers", name=role, legendgroup=role, showlegend=c == 1,
                                     marker={"color": COLORS[role], "size": 10}, text=g.run_name,
                                     hovertemplate="%{text}<br>" + f"{x}=%{{x}}<br>{y}=%{{y}}<extra></extra>"),
                          row=1, col=c)
        front = pareto(df, x, y, higher)
        fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines", name="Pareto front", legendgroup="front",
                                 showlegend=c == 1, line={"color": "#888888", "dash": "dot"}), row=1, col=c)
        fig.update_xaxes(type="log", title_text=label, row=1, col=c)
        fig.update_yaxes(title_text=y + (" (higher is better)" if higher else " (lower is better)"), row=1, col=c)
    fig.update_layout(title=title, height=520)
    table = df[["run_name", "role", y, "n_params", "cpu_latency_ms_b32", "method", "teacher", "alpha", "beta"]]
    html = fig.to_html(full_html=False, include_plotlyjs=True)
    (out / "report.html").write_text(f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"
                                     f"<h1>{title}</h1>{html}{table.to_html(index=False, na_rep='')}</body></html>")


def log_report(experiment: str, family: str = "", artifact_path: str = "report") -> pd.DataFrame:
    """Collect, write and log the report as artifacts of the active run."""
    df = collect(experiment, family)
    if df.empty:
        raise ConfigError(f"experiment {experiment!r} has no finished teacher or student run with test metrics"
                          + (f" registered under {family!r}*" if family else "") + "; run train_teacher/distill first")
    with tempfile.TemporaryDirectory() as tmp:
        write(df, Path(tmp), f"tdml report: {experiment}" + (f" ({family}*)" if family else ""))
        tracking.log_artifacts(tmp, artifact_path)
    tracking.log_metrics({"report_runs": len(df)})
    return df
