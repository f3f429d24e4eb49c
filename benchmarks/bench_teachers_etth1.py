"""Issue 3 numbers: each teacher's test MSE/MAE on ETTh1 (L=720, H=96) with its default
settings (tdml/models/defaults.yaml, etth1 section), <= 10 epochs, and wall time.

CPU budget knobs: ``--max-batches`` caps training batches per epoch (0 = full epochs of
245 batches) and ``--models`` picks teachers; a capped run is labelled as such in the
table. Every run is logged to MLflow (experiment `tdml-bench-teachers`).

    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_teachers_etth1.py \
        --models dlinear itransformer timesnet --epochs 10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import tdml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["dlinear", "itransformer", "timesnet", "timemixer",
                                                    "moderntcn", "patchtst", "micn", "autoformer", "fedformer"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max-batches", type=int, default=0)
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--experiment", default="tdml-bench-teachers")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        t0 = time.perf_counter()
        s = tdml.train_teacher("etth1", model=name, seq_len=720, pred_len=96, experiment=args.experiment,
                               alias="bench", epochs=args.epochs, seed=args.seed, progress=False,
                               set={"tracking.diagnostics": False, "train.max_batches": args.max_batches})
        rows.append(f"| {name} | {s.metrics['test_mse']:.4f} | {s.metrics['test_mae']:.4f} | {s.n_params:,} | "
                    f"{int(s.metrics['epochs_run'])} (best {int(s.metrics['best_epoch']) + 1}) | "
                    f"{time.perf_counter() - t0:.0f} |")
        print(rows[-1], flush=True)
    budget = f"max {args.epochs} epochs, patience 3" + (
        f", at most {args.max_batches} of 245 batches per epoch" if args.max_batches else ", full epochs")
    table = "\n".join([f"ETTh1 L=720 H=96, seed {args.seed}, {budget}; test split read once per run",
                       "| teacher | test MSE | test MAE | parameters | epochs run | wall s |",
                       "|---|---:|---:|---:|---:|---:|", *rows])
    print(table)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"teachers_etth1-{'-'.join(args.models)}-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(table + "\n")  # one file per invocation: parallel invocations do not clobber each other
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
