"""Issue 2 numbers: TimeDistill on ETTh1 (L=720, H=96).

Trains the iTransformer teacher (registered), then MLP students through the registry alias:
without distillation (method `none`), and with TimeDistill alpha = beta = 2 in both KL
modes. Reports test MSE/MAE, parameters, CPU latency (batch 32, median after warm-up),
wall time per run and the share of a distill run's wall time spent in MLflow calls.
Every run is logged to MLflow (experiment `tdml-bench-etth1`); a Markdown table is
printed and written to benchmarks/results/.

    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_timedistill_etth1.py --seeds 2021
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from tdml import tracking
from tdml.pipelines import distill_config, run_distill, run_train_teacher, teacher_config

STUDENTS = {
    "MLP (no distillation)": {"method": "none"},
    "MLP + TimeDistill a=b=2 (batchmean KL)": {"loss": {"alpha": 2, "beta": 2, "kl_mode": "batchmean"}},
    "MLP + TimeDistill a=b=2 (reference KL)": {"loss": {"alpha": 2, "beta": 2, "kl_mode": "reference"}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021])
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--student-epochs", type=int, default=10)
    ap.add_argument("--experiment", default="tdml-bench-etth1")
    ap.add_argument("--max-batches", type=int, default=0, help="cap batches/epoch (smoke runs only)")
    args = ap.parse_args()
    track = {"experiment": args.experiment, "alias": "bench"}
    data = {"dataset": "etth1", "seq_len": 720, "pred_len": 96, "batch_size": 32}
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        t = run_train_teacher(teacher_config({
            "data": data, "model": "itransformer", "tracking": track,
            "train": {"epochs": args.teacher_epochs, "seed": seed, "progress": False,
                      "max_batches": args.max_batches}}))
        rows.append({"seed": seed, "run": "Teacher iTransformer", "mse": t.metrics["test_mse"],
                     "mae": t.metrics["test_mae"], "params": t.n_params, "latency_ms": t.latency_ms,
                     "wall_s": time.perf_counter() - t0, "mlflow_share": float("nan")})
        uri = f"models:/{t.registered.split('/')[1]}@bench"
        for label, extra in STUDENTS.items():
            t0 = time.perf_counter()
            mlflow_before = tracking.tracking_seconds()
            cfg = distill_config({"teacher": uri, "student": "mlp", "tracking": track,
                                  "train": {"epochs": args.student_epochs, "seed": seed, "progress": False,
                                            "max_batches": args.max_batches}, **extra}, "etth1")
            s = run_distill(cfg, {})
            wall = time.perf_counter() - t0
            rows.append({"seed": seed, "run": label, "mse": s.metrics["test_mse"], "mae": s.metrics["test_mae"],
                         "params": s.n_params, "latency_ms": s.latency_ms, "wall_s": wall,
                         "mlflow_share": (tracking.tracking_seconds() - mlflow_before) / wall})
    table = _table(rows, len(args.seeds))
    print(table)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "timedistill_etth1.md").write_text(table + "\n")


def _table(rows, n_seeds: int) -> str:
    def ms(vals):
        return f"{statistics.mean(vals):.4f}" + (f" ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else "")

    lines = [f"ETTh1, L=720, H=96, {n_seeds} seed(s); test split read once per run",
             "| run | test MSE | test MAE | parameters | CPU latency ms (b=32) | wall s | MLflow share |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label in dict.fromkeys(r["run"] for r in rows):
        rs = [r for r in rows if r["run"] == label]
        share = statistics.mean(r["mlflow_share"] for r in rs)
        lines.append(f"| {label} | {ms([r['mse'] for r in rs])} | {ms([r['mae'] for r in rs])} | "
                     f"{rs[0]['params']:,} | {statistics.median(r['latency_ms'] for r in rs):.2f} | "
                     f"{statistics.mean(r['wall_s'] for r in rs):.0f} | "
                     f"{'-' if share != share else f'{share:.1%}'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
