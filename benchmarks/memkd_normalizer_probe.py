"""MemKD's Δh normaliser on validation (issue 23, item 2's open choice): the grid protocol's
student runs (``bench_memkd.py --search grid``: same teacher, trainer, seeds) with
``loss.normalize=none`` beside the grid's ``previous`` trials, read from its Optuna storage.
Validation only: ``final_split=val``, the test split is never read.

    MLFLOW_TRACKING_URI=sqlite:///$PWD/benchmarks/results/memkd_grid/mlflow.db OMP_NUM_THREADS=1 \\
      python benchmarks/memkd_normalizer_probe.py --dataset SwedishLeaf --weights 0.01 1.0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import optuna

from bench_memkd import _train
from memkd_protocol import student_base
from tdml import tracking
from tdml.config import deep_merge
from tdml.runs.distill import distill_in_run

OUT = Path(__file__).resolve().parent / "results" / "memkd_grid"
EXPERIMENT = "memkd-normalizer-probe"


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text  # e.g. state=cell


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="SwedishLeaf")
    p.add_argument("--weights", nargs="+", type=float, default=[0.01, 1.0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--normalize", default="none")
    p.add_argument("--loss", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more MemKD settings, e.g. long_weight=0 (short term only), state=cell")
    args = p.parse_args(argv)
    records = [json.loads(line) for line in (OUT / "records.jsonl").read_text().splitlines()]
    teacher = [r for r in records if r["dataset"] == args.dataset and r["method"] == "teacher"][-1]["uri"]
    study = optuna.load_study(study_name=f"memkd-bench-{args.dataset}-memkd-grid", storage=f"sqlite:///{OUT / 'optuna.db'}")
    grid = {t.params["loss.weight"]: t.value for t in study.trials if t.value is not None}
    extra = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.loss)}
    rows = []
    for w in args.weights:
        vals, ces = [], []
        for seed in args.seeds:
            train = {**_train("lstm_student", 500, None, 50, seed, 0)}
            raw = deep_merge(student_base(train, EXPERIMENT),
                             {"teacher": teacher, "method": "memkd",
                              "loss": {"weight": w, "normalize": args.normalize, **extra},
                              "tracking": {"final_split": "val", "register": False, "log_model": False,
                                           "diagnostics_html": False}})
            with tracking.start_run(EXPERIMENT, f"{args.dataset} memkd w={w} normalize={args.normalize} s{seed}",
                                    "student", tags={"tdml.bench": "memkd-normalizer-probe"}):
                s = distill_in_run(raw)
            vals.append(s.metrics["best_val_auc_prc"])
            ces.append(s.metrics["best_val_ce"])  # the tie-break where AUC-PRC saturates at 1
            print(f"w={w} seed {seed}: val AUC-PRC {vals[-1]:.4f}, CE {ces[-1]:.4f}", flush=True)
        rows.append(f"| {w} | {grid.get(w, float('nan')):.4f} | {statistics.mean(vals):.4f} "
                    f"(± {statistics.stdev(vals):.4f}), CE {statistics.mean(ces):.4f} |")
    table = (f"{args.dataset}, MemKD validation AUC-PRC, mean over seeds {args.seeds}\n\n"
             f"| λd | normalize=previous (grid) | normalize={args.normalize} {extra or ''} |\n|---:|---:|---:|\n" + "\n".join(rows))
    print(table)
    (OUT / f"normalizer_probe_{args.dataset}_{args.normalize}_w{'_'.join(map(str, args.weights))}"
           f"{''.join(f'_{k}{v:g}' if isinstance(v, float) else f'_{k}{v}' for k, v in extra.items())}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
