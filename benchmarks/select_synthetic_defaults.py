"""Choose the synthetic dataset's defaults on validation data only (no test split is read).

The reference scripts have no row for tdml's embedded synthetic data, so its rows in
``tdml/models/defaults.yaml`` are chosen here, at the main job's window (L=336, H=96):

1. the teacher's learning rate: iTransformer trained with each ``--teacher-lrs`` value,
   scored by best validation MSE;
2. with the chosen teacher, the MLP alone and the MLP + TimeDistill for each (alpha, beta)
   of a small grid, scored the same way.

Every run has ``tracking.final_split=val`` and goes to MLflow (experiment
``tdml-select-synthetic``); the tables rank by validation MSE averaged over the seeds.

    OMP_NUM_THREADS=1 python benchmarks/select_synthetic_defaults.py --seeds 2021 2022
"""

from __future__ import annotations

import argparse
import itertools
import statistics

from tdml import tracking
from tdml.runs.distill import distill_in_run
from tdml.runs.teacher import train_teacher_in_run
from tdml.resolve import ENTRY_DEFAULTS, Layers, resolve_teacher

VAL = {"final_split": "val", "diagnostics": False}


def _table(title: str, scores: dict[str, list[float]]) -> str:
    lines = [title, "| setting | val MSE (mean over seeds) | per seed |", "|---|---:|---|"]
    for label, vals in sorted(scores.items(), key=lambda kv: statistics.mean(kv[1])):
        lines.append(f"| {label} | {statistics.mean(vals):.4f} | {', '.join(f'{v:.4f}' for v in vals)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022])
    ap.add_argument("--teacher-lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    ap.add_argument("--alphas", type=float, nargs="*", default=[0.5, 1.0, 2.0])
    ap.add_argument("--betas", type=float, nargs="*", default=[0.0, 1.0])
    ap.add_argument("--experiment", default="tdml-select-synthetic")
    args = ap.parse_args()
    teachers: dict[str, list[float]] = {}
    students: dict[str, list[float]] = {}
    for seed in args.seeds:
        uris = {}
        for i, lr in enumerate(args.teacher_lrs):
            alias = f"select-s{seed}-lr{i}"
            with tracking.start_run(args.experiment, f"teacher lr={lr:g} seed {seed}", "teacher"):
                t = train_teacher_in_run(resolve_teacher(Layers(
                    entry=ENTRY_DEFAULTS["main"], explicit={"train": {"seed": seed, "lr": lr, "progress": False},
                                                           "tracking": {**VAL, "alias": alias, "promote": "always"}})))
            teachers.setdefault(f"teacher lr={lr:g}", []).append(t.metrics["best_val_mse"])
            uris[lr] = (t.metrics["best_val_mse"], f"models:/{t.registered.split('/')[1]}@{alias}")
        if not (args.alphas and args.betas):
            continue
        uri = min(uris.values())[1]  # this seed's best teacher on validation
        grid = [("MLP alone", {"method": "none"})] + [
            (f"MLP + TimeDistill alpha={a:g} beta={b:g}", {"loss": {"alpha": a, "beta": b}})
            for a, b in itertools.product(args.alphas, args.betas)]
        for label, extra in grid:
            with tracking.start_run(args.experiment, f"{label} seed {seed}", "student"):
                s = distill_in_run({"teacher": uri, **extra, "tracking": {**VAL, "register": False},
                                    "train": {"seed": seed, "progress": False}})
            students.setdefault(label, []).append(s.metrics["best_val_mse"])
    print(_table(f"teacher learning rate, synthetic L=336 H=96, seeds {args.seeds}", teachers))
    if students:
        print()
        print(_table("students with each seed's best teacher", students))


if __name__ == "__main__":
    main()
