"""Parallel trials: ``tdml tune --n-jobs k`` against k separate ``tdml tune`` processes on one
Optuna storage and a serial run (issue 25, item 5), back to back on this machine.

One MLflow store; the study's teacher is trained once first (its ``train_teacher`` block). Then
per mode, a fresh SQLite Optuna storage and the same study (same sampler seed, ``--n-trials``):
``serial`` (one process, n_jobs 1), ``n_jobs`` (one command, n_jobs k: k worker processes since
2026-12-07; threads before, which this script measured first -- docs/tuning.md) and
``processes`` (k ``tdml tune`` processes, n_jobs 1 each, started together on the storage). Trials per minute
are counted from the first trial's start to the last trial's end (Optuna's timestamps), and the
best validation value is reported beside. Rounds
alternate the modes so machine noise hits each. The table is printed and logged as an MLflow run.

    OMP_NUM_THREADS=1 python benchmarks/bench_parallel_trials.py --n-trials 8 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]


def tune(study: Path, storage: str, n_trials: int, n_jobs: int, env: dict, sets: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tdml.cli", "tune", "--study", str(study), "--storage", storage,
           "--n-trials", str(n_trials), "--n-jobs", str(n_jobs), "--no-progress", "--set", "finalize=false",
           "--set", "plots=false", *[a for s in sets for a in ("--set", s)]]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def measure(study: Path, work: Path, mode: str, jobs: int, n_trials: int, env: dict, sets: list[str], tag: str):
    storage = f"sqlite:///{work / f'optuna-{mode}-{tag}.db'}"
    t0 = time.perf_counter()
    if mode == "processes":  # k workers share the n trials
        per = [n_trials // jobs + (i < n_trials % jobs) for i in range(jobs)]
        procs = [tune(study, storage, n, 1, env, sets) for n in per]
    else:
        procs = [tune(study, storage, n_trials, jobs if mode == "n_jobs" else 1, env, sets)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{mode}: tdml tune failed:\n{err[-2000:]}")
    wall = time.perf_counter() - t0
    name = optuna.get_all_study_summaries(storage)[0].study_name
    trials = [t for t in optuna.load_study(study_name=name, storage=storage).trials if t.datetime_complete]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    best = min(t.value for t in trials if t.value is not None)
    return {"mode": mode, "trials": len(trials), "span_s": span, "per_min": 60 * len(trials) / span,
            "wall_s": wall, "best": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(REPO / "studies" / "timedistill_synthetic.yaml"))
    ap.add_argument("--n-trials", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--set", dest="sets", action="append", default=["pruner.name=none"])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tdml-parallel-"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    # the teacher, once (a one-trial study trains it through its train_teacher block)
    p = tune(Path(args.study), f"sqlite:///{work / 'warmup.db'}", 1, 1, env, args.sets)
    _, err = p.communicate()
    if p.returncode:
        raise SystemExit(f"warm-up failed:\n{err[-2000:]}")
    rows = []
    for r in range(args.rounds):
        for mode in ("serial", "n_jobs", "processes"):
            row = measure(Path(args.study), work, mode, args.jobs, args.n_trials, env, args.sets, str(r))
            rows.append(row)
            print(f"round {r} {mode}: {row['trials']} trials in {row['span_s']:.0f} s = {row['per_min']:.2f}/min "
                  f"(command {row['wall_s']:.0f} s), best val {row['best']:.4f}", flush=True)
    serial = {r["mode"]: r["per_min"] for r in rows if r["mode"] == "serial"}
    lines = [f"{args.n_trials} trials of {Path(args.study).name}, k = {args.jobs}, OMP_NUM_THREADS="
             f"{env['OMP_NUM_THREADS']}, {os.cpu_count()} CPUs", "",
             "| mode | trials/min | vs serial | first start -> last end (s) | command wall (s) | best val |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['mode']} | {row['per_min']:.2f} | {row['per_min'] / serial['serial']:.2f}x | "
                     f"{row['span_s']:.0f} | {row['wall_s']:.0f} | {row['best']:.4f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
