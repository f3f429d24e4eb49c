"""DDTime on ETTh1 (docs/methods.md §3): what a fresh model reaches when trained on 10 windows.

ETTh1, 24 -> 24, ``--n-windows`` synthetic windows, DLinear experts, ``--seeds`` evaluation
seeds. Rows: full-data training (the ceiling), a random real subset of the same size, MTT,
MTT+CondTSF, MTT+DDTime (and MTT+CondTSF+DDTime). Each synthetic set is the candidate with
the best *validation* MSE (scored every ``--select-every`` iterations); test is read once per
evaluation model. Columns: DLinear (the experts' architecture) and MLP (another one).

Overhead of the DDTime plug-ins: seconds per matching iteration with and without them,
measured on the same experts in interleaved repeats (``--timing-iterations`` each, median),
scoring excluded -- the paper's claim is ~2.5 %.

Everything is one MLflow run (experiment ``tdml-benchmarks``, role ``benchmark``) with the
condense runs as children; the experts are trained once and reused by the later methods.

    OMP_NUM_THREADS=1 TDML_DATA_DIR=../shared/data python benchmarks/bench_ddtime.py
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tdml import tracking
from tdml.condense.condenser import condense
from tdml.condense.experts import get_experts
from tdml.condense.pipeline import condense_config, condense_in_run
from tdml.config import DataConfig, TrainConfig
from tdml.data import load_data
from tdml.models import build_model
from tdml.tasks import TASKS
from tdml.train import Supervised, evaluate, fit, seed_everything

METHODS = ["random", "mtt", "mtt+condtsf", "mtt+ddtime", "mtt+condtsf+ddtime"]
EVAL_MODELS = ["dlinear", "mlp"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-windows", type=int, default=10)
    p.add_argument("--experts", type=int, default=5, help="number of DLinear experts")
    p.add_argument("--expert-epochs", type=int, default=10)
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--select-every", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--full-epochs", type=int, default=10)
    p.add_argument("--timing-iterations", type=int, default=50)
    p.add_argument("--timing-repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="condensation seed (init segment, expert/epoch draws)")
    p.add_argument("--out", default=str(Path(__file__).with_name("results") / "ddtime_etth1.md"))
    return p.parse_args()


def raw_config(args, method: str) -> dict:
    return {"method": method, "seed": args.seed, "n_windows": args.n_windows,
            "data": {"dataset": "etth1", "seq_len": 24, "pred_len": 24},
            "experts": {"model": "dlinear", "n_experts": args.experts, "epochs": args.expert_epochs},
            "match": {"iterations": args.iterations},
            "eval": {"models": EVAL_MODELS, "seeds": args.seeds, "select_every": args.select_every,
                     "baseline_random": False}}


def full_data(args, data) -> dict[str, list[float]]:
    """Test MSE/MAE of each eval model trained on every real training window (per seed)."""
    cfg = condense_config(raw_config(args, "random"))
    out: dict[str, list[float]] = {}
    for model in EVAL_MODELS:
        for seed in args.seeds:
            seed_everything(seed)
            m = build_model(model, data.dims, cfg.eval.model_params.get(model, {}))
            obj = Supervised(m, TASKS.get("forecast"))
            tcfg = TrainConfig(epochs=args.full_epochs, lr=1e-3, lr_schedule="type1", patience=3, seed=seed,
                               progress=False)
            fit(obj, data.loader("train", 32, shuffle=True, seed=seed), data.loader("val", 1024), tcfg)
            test = evaluate(obj, data.loader("test", 1024))[0]
            for k, v in test.items():
                out.setdefault(f"{model}_{k}", []).append(v)
    return out


def overhead(args, data) -> tuple[float, float]:
    """Median seconds per matching iteration (scoring excluded) of MTT and MTT+DDTime, interleaved."""
    per = {"mtt": [], "mtt+ddtime": []}
    experts = None
    for r in range(args.timing_repeats):
        for method in per:
            raw = raw_config(args, method)
            raw["match"]["iterations"] = args.timing_iterations
            raw["eval"]["select_every"] = 10**9  # only the initial/final candidate; not timed anyway
            cfg = condense_config(raw)
            if experts is None:
                experts, _ = get_experts("", data, cfg.data, cfg.experts, torch.device("cpu"))
            res = condense(data, experts, cfg, torch.Generator().manual_seed(r), lambda x, y: 0.0)
            per[method].append(res.seconds / args.timing_iterations)
    return statistics.median(per["mtt"]), statistics.median(per["mtt+ddtime"])


def fmt(vals: list[float]) -> str:
    return f"{np.mean(vals):.4f} ± {np.std(vals):.4f}"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TDML_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    data = load_data(DataConfig(dataset="etth1", seq_len=24, pred_len=24))
    rows, extra = [], {}
    with tracking.start_run("tdml-benchmarks", "bench-ddtime", "benchmark"):
        tracking.log_params({"bench": {k: (" ".join(map(str, v)) if isinstance(v, list) else v)
                                       for k, v in vars(args).items()}})
        t = time.perf_counter()
        full = full_data(args, data)
        rows.append(("full data (all training windows)", {m: (full[f"{m}_mse"], full[f"{m}_mae"]) for m in EVAL_MODELS},
                     time.perf_counter() - t, None, None))
        for method in args.methods:
            t = time.perf_counter()
            with tracking.start_run("", method, "condense", nested=True):
                s = condense_in_run(condense_config(raw_config(args, method)))
            per_model = {m: ([r.final["mse"] for r in s.extra["rows"] if r.model == m],
                             [r.final["mae"] for r in s.extra["rows"] if r.model == m]) for m in EVAL_MODELS}
            rows.append((method, per_model, time.perf_counter() - t, s.metrics.get("seconds_per_iteration"),
                         s.metrics.get("selected_iteration")))
            key = method.replace("+", "_")  # '+' is not allowed in metric names
            tracking.log_metrics({f"{key}_test_mse": np.mean(per_model["dlinear"][0]),
                                  f"{key}_test_mse_mlp": np.mean(per_model["mlp"][0])})
        mtt_s, dd_s = overhead(args, data)
        extra = {"sec_per_iter_mtt": mtt_s, "sec_per_iter_mtt_ddtime": dd_s,
                 "ddtime_overhead_pct": 100 * (dd_s - mtt_s) / mtt_s, "total_wall_seconds": time.perf_counter() - t0}
        tracking.log_metrics({**extra, "full_test_mse": np.mean(full["dlinear_mse"])})
        lines = [f"ETTh1 24->24, {args.n_windows} windows, {args.experts} DLinear experts x {args.expert_epochs} "
                 f"epochs, {args.iterations} iterations, seeds {args.seeds} (test, mean ± std over seeds)", "",
                 "| trained on | DLinear test MSE | DLinear test MAE | MLP test MSE | MLP test MAE | "
                 "s/iteration | selected it. | wall s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, pm, wall, spi, sel in rows:
            lines.append(f"| {name} | {fmt(pm['dlinear'][0])} | {fmt(pm['dlinear'][1])} | {fmt(pm['mlp'][0])} | "
                         f"{fmt(pm['mlp'][1])} | {'' if spi is None else f'{spi:.3f}'} | "
                         f"{'' if sel is None else int(sel)} | {wall:.0f} |")
        lines += ["", f"DDTime plug-in overhead: {mtt_s * 1000:.1f} ms/iteration (MTT) vs {dd_s * 1000:.1f} ms "
                      f"(MTT+DDTime) = {extra['ddtime_overhead_pct']:+.1f} % (median of {args.timing_repeats} "
                      f"interleaved repeats x {args.timing_iterations} iterations)",
                  f"total wall time: {extra['total_wall_seconds']:.0f} s"]
        table = "\n".join(lines)
        tracking.log_text(table, "bench_ddtime.md")
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
