"""The ``condense`` run: experts (reused or trained) -> synthetic set -> selection on validation
-> evaluation of fresh models on it -> artifacts. Expects an active MLflow run."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tdml import tracking
from tdml.condensation.condenser import condense
from tdml.condensation.config import CondenseRunConfig
from tdml.condensation.dataset import ARTIFACT_DIR, random_real_windows, save_synthetic, with_train_windows
from tdml.condensation.evaluation import build_eval_model, evaluate_windows, summarize, validation_score
from tdml.condensation.experts import get_experts
from tdml.condensation.methods import parse_method
from tdml.condensation.report import write_report
from tdml.config import to_dict
from tdml.runs.common import log_sources
from tdml.resolve import resolve_condense
from tdml.data import load_data
from tdml.data.forecast import ForecastData
from tdml.errors import ConfigError
from tdml.train import resolve_device, seed_everything

log = logging.getLogger(__name__)
ROLE = "condense"


@dataclass
class CondenseSummary:
    run_id: str
    method: str
    metrics: dict[str, float]
    experts_run_id: str = ""
    experts_reused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


condense_config = resolve_condense  # the one resolver (tdml/resolve.py), under the name callers know


def condense_in_run(cfg: CondenseRunConfig, callbacks=(), sources: dict[str, str] | None = None) -> CondenseSummary:
    """``callbacks`` get each candidate's validation score as an epoch callback
    ``(step, {}, {"mse": val_mse}, 0.0)`` -- a study's pruner hooks in there. ``sources``: each
    value's layer (``tdml.resolve``), logged as ``config_sources.json``."""
    t0 = time.perf_counter()
    base, plugins = parse_method(cfg.method)
    seed_everything(cfg.seed)
    device = resolve_device("auto")
    data = load_data(cfg.data)
    if not isinstance(data, ForecastData) or data.task != "forecast":
        raise ConfigError(f"dataset {cfg.data.dataset!r} is not a forecasting dataset; condensation needs one")
    if cfg.data.dataset.startswith("runs:"):
        raise ConfigError("condensing a condensed dataset is not supported; pass the original dataset")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seq_len=data.seq_len, pred_len=data.pred_len))
    tracking.log_params({"config": to_dict(cfg)})
    log_sources(cfg, sources or {})
    tracking.set_tags({"tdml.method": cfg.method})
    split = cfg.tracking.final_split
    gen = torch.Generator().manual_seed(cfg.seed)
    metrics: dict[str, float] = {}
    summary = CondenseSummary(tracking.active_run_id(), cfg.method, metrics)
    series = init = start = None
    history, selection = [], []

    if base == "random":
        x, y = random_real_windows(data, cfg.n_windows, gen)
    else:
        experts, reused = get_experts(cfg.experts_uri, data, cfg.data, cfg.experts, device, cfg.progress)
        summary.experts_run_id, summary.experts_reused = experts.run_id, reused
        tracking.set_tags({"tdml.experts_run_id": experts.run_id, "tdml.experts_reused": reused})
        val_score = validation_score(data, cfg.eval, device)
        n_scored = [0]

        def score(x, y):
            val = val_score(x, y)
            for cb in callbacks:
                cb(n_scored[0], {}, {"mse": val}, 0.0)
            n_scored[0] += 1
            return val

        def on_iteration(it, row):  # a candidate's scores (val MSE, diversity) are logged at its iteration too
            if it % 10 == 0 or it + 1 == cfg.match.iterations:
                tracking.log_metrics({f"cond_{k}": v for k, v in row.items() if k != "iteration"}, step=it)

        res = condense(data, experts, cfg, gen, score, on_iteration, device)
        x, y, series, init = res.x, res.y, res.series, res.init if res.series is not None else None
        start, history, selection = (res.init_x, res.init_y), res.history, res.selection
        chosen = next(r for r in selection if r["iteration"] == res.selected_iteration)
        metrics.update({"selected_iteration": res.selected_iteration, "selected_val_mse": res.selected_score,
                        "selected_diversity_sym_kl": chosen["diversity_sym_kl"],
                        "condense_seconds": res.seconds,
                        "seconds_per_iteration": res.seconds / max(cfg.match.iterations, 1)})

    rows = evaluate_windows(data, x, y, cfg.eval, device, split)
    metrics.update(summarize(rows, split))
    metrics["n_params"] = build_eval_model(with_train_windows(data, x, y), cfg.eval.models[0], cfg.eval).n_parameters()
    if cfg.eval.baseline_random and base != "random":
        rx, ry = random_real_windows(data, cfg.n_windows, torch.Generator().manual_seed(cfg.seed))
        metrics.update(summarize(evaluate_windows(data, rx, ry, cfg.eval, device, split), split, "random_"))
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"method": cfg.method, "run_id": summary.run_id, "layout": cfg.layout, "stride": cfg.match.stride,
                "experts_run_id": summary.experts_run_id,
                "data": {"dataset": data.name, "data_path": cfg.data.data_path or "", "sha256": data.sha256 or "",
                         "seq_len": data.seq_len, "pred_len": data.pred_len}}
        tracking.log_artifacts(save_synthetic(Path(tmp) / ARTIFACT_DIR, x, y, series, data.columns, meta),
                               ARTIFACT_DIR)
        real = next(iter(data.loader("train", 256, shuffle=True, seed=cfg.seed)))
        metrics.update(write_report(Path(tmp) / "report", data.columns, x, y, real["x"], real["y"], series, init,
                                    start, history, selection, cfg.ddtime.tau, cfg.ddtime.representation,
                                    f"Condensation {cfg.method}: {data.name} L={data.seq_len} H={data.pred_len}, "
                                    f"{cfg.n_windows} windows"))
        tracking.log_artifacts(Path(tmp) / "report", "report")
    metrics["wall_seconds"] = time.perf_counter() - t0
    tracking.log_metrics(metrics)
    summary.extra = {"rows": rows, "x": x, "y": y}
    return summary


def run_condense(raw: dict[str, Any]) -> CondenseSummary:
    """A condense run of its own (the config is coerced inside it: bad input = FAILED run)."""
    exp = raw.get("tracking", {}).get("experiment", "tdml-condense")
    with tracking.start_run(exp, f"condense-{raw.get('method', CondenseRunConfig.method)}", ROLE):
        sources: dict[str, str] = {}
        return condense_in_run(condense_config(raw, sources), sources=sources)
