"""MemKD and six KD baselines on UCR datasets, in the layout of the MemKD paper's table.

For each dataset: train ``--teacher-seeds`` LSTM teachers and alias the best on validation
AUC-PRC (tdml.selection), then distil an LSTM student with every method × seed from
``models:/ucr-<name>-lstm_teacher@champion``. Every run is an MLflow child run of one
parent run (experiment ``bench-memkd``); the parent gets the results table as CSV, Markdown
and a plotly HTML figure (tdml.reporting), with the published AUC-PRC values beside ours.

Per-run records are appended to ``<out>/records.jsonl`` as they finish, and a rerun with
the same ``--out`` skips what is already there (``--fresh`` to start over), so a long
benchmark can be stopped and resumed.

    OMP_NUM_THREADS=1 TDML_DATA_DIR=../shared/data python benchmarks/bench_memkd.py \\
        --datasets ItalyPowerDemand MoteStrain Trace SwedishLeaf \\
        --teacher-epochs 30 --student-epochs 20 --patience 10 --out benchmarks/results/memkd

(the reduced budget behind benchmarks/results/memkd/table.md: 48.9 min on 2 shared cores;
the defaults are the paper's: <= 500 epochs, patience 50).

λd per method is fixed (``WEIGHTS``; no per-method search) -- see docs/classification.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from tdml import tracking
from tdml.pipelines import distill_in_run
from tdml.reporting import PUBLISHED_AUC_PRC, results_table
from tdml.selection import select_teacher

DATASETS = ["ItalyPowerDemand", "Trace", "SwedishLeaf", "MoteStrain"]
METHODS = ["none", "kd", "fitnet", "rkd", "at", "dkd", "dt2w", "memkd"]
# λd per method (λc = 1): every method at its Config defaults with weight 1 (KD/DKD T = 4, DKD
# α = 1, β = 8, RKD distance : angle = 1 : 2, DT2W γ = 0.1 plain, MemKD short : long = 1 : 1).
WEIGHTS = {m: 1.0 for m in METHODS}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="student seeds")
    p.add_argument("--teacher-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--teacher-epochs", type=int, default=500, help="cap (paper: <= 500)")
    p.add_argument("--student-epochs", type=int, default=500, help="cap (paper: <= 500)")
    p.add_argument("--patience", type=int, default=50, help="early-stopping patience on validation CE")
    p.add_argument("--student-lr", type=float, default=0.1)
    p.add_argument("--teacher-lr", type=float, default=0.01)
    p.add_argument("--max-batches", type=int, default=0, help=">0 caps batches per epoch (smoke runs)")
    p.add_argument("--experiment", default="bench-memkd")
    p.add_argument("--out", default="benchmarks/results/memkd")
    p.add_argument("--fresh", action="store_true", help="ignore records of an earlier (partial) run")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the tables from <out>/records.jsonl without training or MLflow")
    p.add_argument("--wall-seconds", type=float, default=0.0, help="with --report-only: wall time to print")
    return p.parse_args(argv)


def _train(epochs: int, lr: float, patience: int, seed: int, max_batches: int) -> dict:
    return {"epochs": epochs, "lr": lr, "patience": patience, "seed": seed, "lr_schedule": "constant",
            "progress": False, "max_batches": max_batches}


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec_path = out / "records.jsonl"
    if args.fresh and rec_path.exists():
        rec_path.unlink()
    records = [json.loads(line) for line in rec_path.read_text().splitlines()] if rec_path.exists() else []
    done = {(r["dataset"], r["method"], r["seed"]) for r in records}
    t_start = time.perf_counter()
    if args.report_only:
        print(write_report(records, args, out, args.wall_seconds))
        return 0

    def add(rec: dict) -> None:
        records.append(rec)
        with rec_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    with tracking.start_run(args.experiment, "bench-memkd", "benchmark") as parent:
        tracking.log_params({"bench": {k: (" ".join(map(str, v)) if isinstance(v, list) else v)
                                       for k, v in vars(args).items()}, "weights": WEIGHTS})
        for ds in args.datasets:
            teacher_uri = None
            teacher_done = [r for r in records if r["dataset"] == ds and r["method"] == "teacher"]
            if teacher_done:
                teacher_uri = teacher_done[0]["uri"]
            else:
                raw = {"data": {"dataset": f"ucr:{ds}"}, "model": "lstm_teacher",
                       "train": _train(args.teacher_epochs, args.teacher_lr, args.patience, 0, args.max_batches),
                       "tracking": {"latency_repeats": 5, "experiment": args.experiment}}
                t_sel = time.perf_counter()
                sel = select_teacher(raw, args.teacher_seeds, metric="auc_prc", mode="max")
                per_teacher = (time.perf_counter() - t_sel) / len(sel.runs)  # selection included
                teacher_uri = sel.uri
                for seed, s in sel.runs.items():
                    add({"dataset": ds, "method": "teacher_all", "seed": seed, **_pick(s.metrics),
                         "run_wall_s": per_teacher, "n_params": s.n_params, "latency_ms": s.latency_ms, "run_id": s.run_id})
                best = sel.runs[sel.best_seed]
                add({"dataset": ds, "method": "teacher", "seed": sel.best_seed, **_pick(best.metrics),
                     "n_params": best.n_params, "latency_ms": best.latency_ms, "run_id": best.run_id,
                     "uri": f"models:/{sel.name}/{sel.best_version}", "val_scores": sel.scores})
                print(f"[{ds}] teacher seeds val AUC-PRC {sel.scores} -> seed {sel.best_seed} "
                      f"(test AUC-PRC {best.metrics['test_auc_prc']:.4f})", flush=True)
            for method in args.methods:
                for seed in args.seeds:
                    if (ds, method, seed) in done:
                        continue
                    raw = {"teacher": teacher_uri, "student": "lstm_student", "method": method,
                           "loss": {"weight": WEIGHTS.get(method, 1.0)} if method != "none" else {},
                           "train": _train(args.student_epochs, args.student_lr, args.patience, seed,
                                           args.max_batches),
                           "tracking": {"register": False, "latency_repeats": 5, "experiment": args.experiment}}
                    t_run = time.perf_counter()
                    with tracking.start_run(args.experiment, f"{ds}-{method}-seed{seed}", "student",
                                            tags={"tdml.bench": "memkd"}):
                        s = distill_in_run(raw)
                    add({"dataset": ds, "method": method, "seed": seed, **_pick(s.metrics),
                         "run_wall_s": time.perf_counter() - t_run,
                         "n_params": s.n_params, "latency_ms": s.latency_ms,
                         "teacher_n_params": s.extra["teacher_n_params"],
                         "teacher_latency_ms": s.extra["teacher_latency_ms"], "run_id": s.run_id})
                    print(f"[{ds}] {method} seed {seed}: test AUC-PRC {s.metrics['test_auc_prc']:.4f} "
                          f"({s.metrics['epochs_run']:.0f} epochs, {time.perf_counter() - t_start:.0f} s)",
                          flush=True)
            write_report(records, args, out, time.perf_counter() - t_start)  # partial table per dataset
        wall = time.perf_counter() - t_start
        report = write_report(records, args, out, wall)
        tracking.log_artifacts(str(out), "results")
        tracking.log_metrics({"bench_wall_seconds": wall})
        table = _table(records, args)
        tracking.log_plotly_html(table.figure("MemKD benchmark: test AUC-PRC × 100"), "memkd_table.html")
        print(report)
        print(f"parent run {parent.info.run_id}")
    return 0


def _time_split(records) -> str:
    """Where the runs' wall time went: training (fit, validation included) vs everything else
    (data, teacher cache, test, latency, diagnostics, MLflow), per dataset and in total."""
    rows = ["\n### time\n", "| dataset | runs | run wall (min) | training (min) | outside training |",
            "|---|---:|---:|---:|---:|"]
    timed = [r for r in records if "run_wall_s" in r and "train_seconds" in r and r["method"] != "teacher"]
    for d in [*dict.fromkeys(r["dataset"] for r in timed), None]:
        rs = [r for r in timed if d is None or r["dataset"] == d]
        wall, train = sum(r["run_wall_s"] for r in rs), sum(r["train_seconds"] for r in rs)
        if wall:
            rows.append(f"| {d or '**all**'} | {len(rs)} | {wall / 60:.1f} | {train / 60:.1f} | {1 - train / wall:.0%} |")
    return "\n".join(rows) + "\n"


def _pick(metrics: dict) -> dict:
    keys = ("test_auc_prc", "test_auc_roc", "test_accuracy", "test_ce", "best_val_auc_prc", "best_val_ce",
            "epochs_run", "best_epoch", "train_seconds")
    return {k: float(metrics[k]) for k in keys if k in metrics}


def _table(records, args, metric: str = "test_auc_prc"):
    methods = ["teacher", "teacher_all", *args.methods]
    ds = [d for d in args.datasets if any(r["dataset"] == d for r in records)]
    return results_table(records, metric, methods=methods, datasets=ds, reference=("teacher", "teacher_all"),
                         published=PUBLISHED_AUC_PRC)


def write_report(records, args, out: Path, wall: float) -> str:
    parts = []
    for metric in ("test_auc_prc", "test_auc_roc", "test_accuracy"):
        t = _table(records, args, metric)
        t.to_csv(out / f"table_{metric}.csv")
        if metric == "test_auc_prc":
            t.figure("MemKD benchmark: test AUC-PRC × 100").write_html(str(out / "table_test_auc_prc.html"),
                                                                       include_plotlyjs=True)
        if metric != "test_auc_prc":  # the paper's table is AUC-PRC only
            t.cells["published"] = float("nan")
        parts.append(f"### {metric}\n\n" + t.to_markdown(published_label="published"))
    # efficiency: parameters and CPU latency (batch 32, median) of teacher vs student
    eff = ["| dataset | teacher params | student params | ratio | teacher ms (b32) | student ms (b32) | speedup |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for d in args.datasets:
        st = [r for r in records if r["dataset"] == d and r["method"] in args.methods]
        if not st:
            continue
        tp, sp = st[0]["teacher_n_params"], st[0]["n_params"]
        tl = sum(r["teacher_latency_ms"] for r in st) / len(st)
        sl = sum(r["latency_ms"] for r in st) / len(st)
        eff.append(f"| {d} | {tp:,} | {sp:,} | {tp / sp:.0f}× | {tl:.2f} | {sl:.2f} | {tl / sl:.0f}× |")
    header = (f"# MemKD benchmark\n\nteacher lstm_teacher (3×100), student lstm_student (1×8); "
              f"datasets {', '.join(args.datasets)}; student seeds {args.seeds}; teacher = best of "
              f"seeds {args.teacher_seeds} by validation AUC-PRC (`teacher`; `teacher_all` = all teacher seeds); "
              f"epochs ≤ {args.teacher_epochs} (teacher) / ≤ {args.student_epochs} (student), early stopping "
              f"on validation CE, patience {args.patience}; lr {args.teacher_lr} / {args.student_lr}; "
              f"λd = {WEIGHTS}; wall time {wall / 60:.1f} min (this invocation; resumed runs count only "
              f"their own part).\n\n")
    text = header + "\n".join(parts) + "\n### efficiency\n\n" + "\n".join(eff) + "\n" + _time_split(records)
    (out / "table.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
