"""Choose the synthetic dataset's TimeDistill loss weights on validation data only.

The reference scripts give no row for tdml's embedded synthetic data, so its
``defaults.yaml`` row is chosen here: the main job's teacher (trained with its defaults,
registered), then the MLP student with its defaults for every (alpha, beta) of a small grid
and the MLP alone, each run with ``tracking.final_split=val`` -- the test split is never
read. Runs go to MLflow (experiment ``tdml-select-synthetic``); the table ranks the grid by
best validation MSE averaged over the seeds.

    OMP_NUM_THREADS=1 python benchmarks/select_synthetic_defaults.py --seeds 2021 2022
"""

from __future__ import annotations

import argparse
import itertools
import statistics

from tdml import tracking
from tdml.pipelines import distill_in_run, train_teacher_in_run
from tdml.resolve import resolve_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022])
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--experiment", default="tdml-select-synthetic")
    args = ap.parse_args()
    val = {"final_split": "val", "register": False, "diagnostics": False}
    scores: dict[str, list[float]] = {}
    for seed in args.seeds:
        alias = f"select{seed}"
        with tracking.start_run(args.experiment, f"teacher seed {seed}", "teacher"):
            t = train_teacher_in_run(resolve_teacher({
                "data": {"dataset": "synthetic", "seq_len": 96, "pred_len": 24}, "model": "itransformer",
                "train": {"seed": seed, "progress": False},
                "tracking": {"alias": alias, "final_split": "val", "diagnostics": False}}))
        scores.setdefault("teacher", []).append(t.metrics["best_val_mse"])
        uri = f"models:/{t.registered.split('/')[1]}@{alias}"
        grid = [("alone", {"method": "none"})] + [
            (f"alpha={a:g} beta={b:g}", {"loss": {"alpha": a, "beta": b}})
            for a, b in itertools.product(args.alphas, args.betas)]
        for label, extra in grid:
            with tracking.start_run(args.experiment, f"{label} seed {seed}", "student"):
                s = distill_in_run({"teacher": uri, **extra, "tracking": val,
                                    "train": {"seed": seed, "progress": False}})
            scores.setdefault(label, []).append(s.metrics["best_val_mse"])
    lines = [f"synthetic, L=96, H=24, seeds {args.seeds}: best validation MSE (test never read)",
             "| run | val MSE (mean over seeds) | per seed |", "|---|---:|---|"]
    for label, vals in sorted(scores.items(), key=lambda kv: statistics.mean(kv[1])):
        lines.append(f"| {label} | {statistics.mean(vals):.4f} | {', '.join(f'{v:.4f}' for v in vals)} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
