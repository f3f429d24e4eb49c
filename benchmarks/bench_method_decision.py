"""The method decision of issue 26 (item 3), on validation data: what a cheaper TimeDistill
step costs and what it does to the student, against the reference form.

Per dataset (ETTh1, ETTm1, Weather; L = 720, H = 96; catalog files from ``TDML_DATA_DIR``) one
iTransformer teacher with that dataset's defaults, then the MLP student at the full default
budget (the dataset's epochs, lr 0.01 type1, patience 5) for each seed, in these variants:

- ``alone``: ``method=none`` (the baseline a default must beat);
- ``reference``: TimeDistill as shipped (regressor Linear -> ReLU -> Linear);
- ``linear``, ``lowrank``: the cheaper regressors (``loss.regressor``; rank 64);
- ``bf16``: the reference form with ``train.precision=bf16`` (CPUs with AVX-512 BF16 / AMX);
- ``cache-fp16``, ``cache-bf16`` (on request, ``--variants``): the reference form with its teacher
  outputs stored in 16 bits (``teacher_cache_dtype``; issue 26 item 2).

Each run reports its best validation MSE (the selection metric) and seconds per epoch; the
test split is read once per run at the end (reported, never used to choose). The table gives
mean +- std over seeds per variant and dataset, and each variant's validation MSE and epoch
time relative to ``reference`` and ``alone``. Per-epoch time here comes from runs that share a
loaded machine; the ratio a default is judged by is measured back to back by
``bench_distill_cost.py``.

Resumable: every run is an MLflow run of ``--experiment`` in the store the environment names,
tagged ``tdml.bench_key``; finished keys are read back, and ``--report`` only rebuilds the
table (``<out>/table.md`` + ``records.csv``).

    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 \
    MLFLOW_TRACKING_URI=sqlite:///benchmarks/results/method_decision/mlflow.db \
        python benchmarks/bench_method_decision.py --out benchmarks/results/method_decision
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from bench_timedistill_etth1 import KEY_TAG, finished  # same key tag, same resume rule
from tdml import tracking
from tdml.runs.distill import distill_in_run
from tdml.runs.teacher import train_teacher_in_run
from tdml.resolve import resolve_teacher

VARIANTS = {
    "alone": {"method": "none"},
    "reference": {"loss": {"regressor": "reference"}},
    "linear": {"loss": {"regressor": "linear"}},
    "lowrank": {"loss": {"regressor": "lowrank", "regressor_rank": 64}},
    "bf16": {"loss": {"regressor": "reference"}, "train": {"precision": "bf16"}},
    # item 2: the reference form reading its teacher outputs from a float16 / bfloat16 cache
    "cache-fp16": {"teacher_cache_dtype": "float16"},
    "cache-bf16": {"teacher_cache_dtype": "bfloat16"},
}
DEFAULT_VARIANTS = ["alone", "reference", "linear", "lowrank", "bf16"]
DATASETS = ("etth1", "ettm1", "weather")


def run_all(args) -> None:
    track = {"experiment": args.experiment, "diagnostics": False, "register": False, "log_model": False}
    budget = {"progress": False, "max_batches": args.max_batches}
    for seed in args.seeds:  # seed-major: one seed of everything first
        for ds in args.datasets:
            done = finished(args.experiment)
            alias = "bench"
            if f"teacher-{ds}" not in done:
                with tracking.start_run(args.experiment, f"teacher itransformer {ds} L720-H96", "teacher",
                                        tags={KEY_TAG: f"teacher-{ds}"}):
                    train_teacher_in_run(resolve_teacher({
                        "data": {"dataset": ds, "seq_len": 720, "pred_len": 96}, "model": "itransformer",
                        "tracking": {**track, "register": True, "log_model": True, "alias": alias},
                        "train": {"seed": 2021, **budget}}))
            uri = f"models:/{ds}-itransformer-L720-H96@{alias}"
            for variant in args.variants:
                key = f"{ds}-{variant}-s{seed}"
                if key in done:
                    continue
                # every arm was measured on a float32 cache (the default then): pinned, so a resumed
                # run compares like with like now that the default is float16
                extra = {"teacher_cache_dtype": "float32", **VARIANTS[variant]}
                with tracking.start_run(args.experiment, f"mlp {variant} {ds} H96 seed {seed}", "student",
                                        tags={KEY_TAG: key}):
                    distill_in_run({"teacher": uri, **extra, "tracking": track,
                                    "train": {**extra.get("train", {}), "seed": seed, **budget}})


def records(experiment: str) -> list[dict]:
    out = []
    for key, run in finished(experiment).items():
        if key.startswith("teacher-"):
            continue
        ds, rest = key.split("-", 1)  # dataset names have no dash; variant names may
        variant, seed = rest.rsplit("-", 1)
        m = run.data.metrics
        out.append({"dataset": ds, "variant": variant, "seed": int(seed[1:]), "best_val_mse": m["best_val_mse"],
                    "test_mse": m["test_mse"], "epochs_run": int(m["epochs_run"]),
                    "s_per_epoch": m["train_seconds"] / m["epochs_run"], "run_id": run.info.run_id})
    return sorted(out, key=lambda r: (r["dataset"], list(VARIANTS).index(r["variant"]), r["seed"]))


def _ms(vals: list[float], digits: int = 4) -> str:
    return f"{statistics.mean(vals):.{digits}f}" + (f" ± {statistics.stdev(vals):.{digits}f}" if len(vals) > 1 else "")


def table(recs: list[dict]) -> str:
    lines = ["| dataset | variant | seeds | best val MSE | vs reference | vs alone | s / epoch | epoch vs alone | "
             "epochs | test MSE (read once) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ds in DATASETS:
        by = {v: [r for r in recs if r["dataset"] == ds and r["variant"] == v] for v in VARIANTS}
        mean = {v: statistics.mean(r["best_val_mse"] for r in rs) for v, rs in by.items() if rs}
        sec = {v: statistics.mean(r["s_per_epoch"] for r in rs) for v, rs in by.items() if rs}
        for v, rs in by.items():
            if not rs:
                continue
            rel = lambda base: f"{mean[v] / mean[base] - 1:+.1%}" if base in mean else "–"  # noqa: E731
            lines.append(f"| {ds} | {v} | {len(rs)} | {_ms([r['best_val_mse'] for r in rs])} | {rel('reference')} | "
                         f"{rel('alone')} | {_ms([r['s_per_epoch'] for r in rs], 1)} | "
                         f"{sec[v] / sec['alone'] if 'alone' in sec else float('nan'):.2f}× | "
                         f"{_ms([r['epochs_run'] for r in rs], 1)} | {_ms([r['test_mse'] for r in rs])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/method_decision"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022, 2023])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    ap.add_argument("--experiment", default="tdml-bench-method-decision")
    ap.add_argument("--max-batches", type=int, default=0, help="cap batches/epoch (smoke runs only)")
    ap.add_argument("--report", action="store_true", help="only rebuild the table from the MLflow record")
    args = ap.parse_args()
    if not args.report:
        run_all(args)
    recs = records(args.experiment)
    args.out.mkdir(parents=True, exist_ok=True)
    if recs:
        with open(args.out / "records.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(recs[0]))
            w.writeheader()
            w.writerows(recs)
    md = table(recs)
    (args.out / "table.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
