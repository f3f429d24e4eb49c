"""Does the LSTM train stably at a given lr / gradient clipping / schedule? Validation only
(issue 14, items 2-3; issue 23, item 1: the regime selection).

Trains ``--model`` alone (plain cross-entropy: for ``lstm_student`` this is the Base row of the
MemKD table) per dataset × setting × seed at the full budget (<= 500 epochs, early stopping on
validation CE, patience 50), with ``tracking.final_split=val``: the test split is never read.
Every run is an MLflow run (experiment ``bench-lstm-lr``, per-epoch ``train_loss``, ``val_ce``,
``val_auc_prc``) and one row of ``<out>/<model>.csv``; ``<out>/<model>_curves.csv`` holds the
per-epoch curves. A rerun skips (dataset, setting, seed) rows already in the CSV.

Per run it reports what "unstable" would look like: the best validation AUC-PRC / CE, the
epoch of the best checkpoint, ``collapsed`` (validation accuracy of the kept checkpoint at or
below the majority-class share: the model never left the prior), ``ce_spikes`` (epochs whose
validation CE jumps by > 50 % over the previous epoch) and ``train_up`` (epochs whose training
loss rises by > 20 %).

    OMP_NUM_THREADS=1 TDML_DATA_DIR=../shared/data python benchmarks/bench_lstm_lr.py \\
        --model lstm_student --datasets Trace MoteStrain --settings 0.1 0.03 0.01
    ... --model lstm_teacher --datasets Trace --settings 0.01 0.01:1.0 0.001   # lr[:grad_clip]
    ... --settings 0.003 0.1::plateau 0.1::step 0.1::cosine   # lr[:grad_clip[:schedule]]

A setting without a schedule trains at a constant lr; ``plateau`` / ``step`` / ``cosine`` use
tdml.schedules with their defaults (plateau: x0.5 after 10 epochs without a new best validation
CE; step: x0.5 every 50 epochs; cosine to 0 over ``--epochs``), so "initial lr" means what
MemKD's paper says for each reading of its decay.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import torch

from tdml import tracking
from tdml.data import load_data
from tdml.runs.teacher import train_teacher_in_run
from tdml.resolve import resolve_teacher


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lstm_student")
    p.add_argument("--datasets", nargs="+", default=["Trace", "MoteStrain"])
    p.add_argument("--settings", nargs="+", default=["0.1", "0.03", "0.01"], help="lr[:grad_clip[:schedule]]")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--max-batches", type=int, default=0)
    p.add_argument("--experiment", default="bench-lstm-lr")
    p.add_argument("--out", default="benchmarks/results/lstm_lr")
    p.add_argument("--report", action="store_true", help="only print the per-setting summary of <out>")
    return p.parse_args(argv)


def report(out: Path, model: str) -> str:
    """Per dataset × setting, mean ± std over seeds of the kept checkpoint's validation numbers,
    and from the training-loss curves (5-epoch rolling mean, relative to the first epoch's loss,
    which is chance level): ``no-learn`` = seeds that never fell below 75 % of it; ``relapse`` =
    seeds that fell below 60 % and later came back above 90 % of it (un-learned, not a one-epoch
    spike); ``up %`` = share of the epochs after the first fall below 60 % spent above 90 %."""
    import numpy as np
    import pandas as pd

    summ, cur = pd.read_csv(out / f"{model}.csv"), pd.read_csv(out / f"{model}_curves.csv")
    flags = {}
    for (d, st, seed), g in cur.groupby(["dataset", "setting", "seed"]):
        tl = g.train_loss.rolling(5, min_periods=1).mean().to_numpy()
        low = (tl < 0.6 * tl[0]).nonzero()[0]
        after = tl[low[0]:] if len(low) else tl[:0]
        flags[(d, str(st), seed)] = (int(tl.min() > 0.75 * tl[0]), int((after > 0.9 * tl[0]).any()),
                                     float((after > 0.9 * tl[0]).mean()) if len(after) else 0.0)
    lines = [f"| dataset | {model} lr[:clip] | seeds | best val AUC-PRC | best val CE | best epoch | no-learn | relapse | up % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (d, st), g in summ.groupby(["dataset", "setting"], sort=False):
        f = [flags.get((d, str(st), s), (0, 0, 0.0)) for s in g.seed]
        lines.append(f"| {d} | {st} | {len(g)} | {100 * g.best_val_auc_prc.mean():.1f} ± {100 * g.best_val_auc_prc.std():.1f} "
                     f"| {g.best_val_ce.mean():.3f} ± {g.best_val_ce.std():.3f} | {g.best_epoch.mean():.0f} "
                     f"| {sum(x[0] for x in f)} | {sum(x[1] for x in f)} | {100 * sum(x[2] for x in f) / len(f):.0f} |")
    # the selection: per setting, the mean over datasets of the seed-mean validation AUC-PRC, and
    # the average rank over datasets (rank by seed-mean AUC-PRC, ties by the lower seed-mean CE)
    means = summ.groupby(["dataset", "setting"], sort=False)[["best_val_auc_prc", "best_val_ce"]].mean().reset_index()
    ranks = {}
    for d, g in means.groupby("dataset", sort=False):
        order = g.sort_values(["best_val_auc_prc", "best_val_ce"], ascending=[False, True]).setting.tolist()
        for r, st in enumerate(order, start=1):
            ranks.setdefault(st, []).append(r)
    lines += ["", f"| {model} lr[:clip[:schedule]] | datasets | mean val AUC-PRC | mean val CE | average rank |",
              "|---|---:|---:|---:|---:|"]
    for st, g in means.groupby("setting", sort=False):
        lines.append(f"| {st} | {len(g)} | {100 * g.best_val_auc_prc.mean():.1f} | {g.best_val_ce.mean():.3f} "
                     f"| {np.mean(ranks[st]):.2f} |")
    return "\n".join(lines) + "\n"


class Curve:
    def __init__(self):
        self.rows: list[dict] = []

    def __call__(self, epoch, train_terms, val_metrics, lr):
        self.rows.append({"epoch": epoch, "train_loss": train_terms.get("loss", float("nan")),
                          **{f"val_{k}": float(v) for k, v in val_metrics.items()}})


def _prior(ds: str) -> float:
    data = load_data(resolve_teacher({"data": {"dataset": f"ucr:{ds}"}}).data)
    y = data.splits["val"].y
    return float(torch.bincount(y.long()).max()) / len(y)


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.report:
        print(report(out, a.model))
        return 0
    summ, curves = out / f"{a.model}.csv", out / f"{a.model}_curves.csv"
    done = set()
    if summ.exists():
        with summ.open() as f:
            done = {(r["dataset"], r["setting"], int(r["seed"])) for r in csv.DictReader(f)}
    for ds in a.datasets:
        prior = _prior(ds)
        for setting in a.settings:
            lr, clip, schedule = (setting.split(":") + ["", ""])[:3]
            for seed in a.seeds:
                if (ds, setting, seed) in done:
                    continue
                raw = {"data": {"dataset": f"ucr:{ds}"}, "model": a.model,
                       "train": {"lr": float(lr), "grad_clip": float(clip or 0), "seed": seed, "epochs": a.epochs,
                                 "patience": a.patience, "lr_schedule": schedule or "constant", "progress": False,
                                 "max_batches": a.max_batches},
                       "tracking": {"final_split": "val", "register": False, "log_model": False,
                                    "diagnostics": False, "latency_repeats": 1, "experiment": a.experiment}}
                cb = Curve()
                with tracking.start_run(a.experiment, f"{ds}-{a.model}-{setting}-seed{seed}", "benchmark",
                                        tags={"tdml.bench": "lstm-lr", "tdml.setting": setting}):
                    s = train_teacher_in_run(resolve_teacher(raw), [cb])
                    m = s.metrics
                    ce = [r["val_ce"] for r in cb.rows]
                    tl = [r["train_loss"] for r in cb.rows]
                    row = {"dataset": ds, "setting": setting, "seed": seed, "lr": float(lr), "grad_clip": float(clip or 0),
                           "schedule": schedule or "constant",
                           "best_val_auc_prc": m["best_val_auc_prc"], "best_val_ce": m["best_val_ce"],
                           "best_val_accuracy": m["best_val_accuracy"], "prior": prior,
                           "collapsed": int(m["best_val_accuracy"] <= prior + 1e-9),
                           "best_epoch": int(m["best_epoch"]), "epochs_run": int(m["epochs_run"]),
                           "ce_spikes": sum(b > 1.5 * x for x, b in zip(ce, ce[1:])),
                           "train_up": sum(b > 1.2 * x for x, b in zip(tl, tl[1:])),
                           "train_seconds": round(m["train_seconds"], 1), "run_id": s.run_id}
                    tracking.log_metrics({k: row[k] for k in ("collapsed", "ce_spikes", "train_up")})
                new = not summ.exists()
                with summ.open("a", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(row))
                    if new:
                        w.writeheader()
                    w.writerow(row)
                newc = not curves.exists()
                with curves.open("a", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=["dataset", "setting", "seed", *cb.rows[0]], extrasaction="ignore")
                    if newc:
                        w.writeheader()
                    for r in cb.rows:
                        w.writerow({"dataset": ds, "setting": setting, "seed": seed, **r})
                print(f"[{ds}] {a.model} {setting} seed {seed}: best val AUC-PRC {row['best_val_auc_prc']:.4f} "
                      f"CE {row['best_val_ce']:.4f} @ {row['best_epoch']}/{row['epochs_run']} collapsed "
                      f"{row['collapsed']} spikes {row['ce_spikes']} train_up {row['train_up']} "
                      f"({row['train_seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
