"""Trials per minute of a shipped study, before vs after a change, back to back.

Each side is a checkout of tdml (``--before``: a commit, checked out as a git worktree under
the work folder; ``--after``: this working tree) running its own copy of the study file
(``studies/timedistill_<study>.yaml``) through its own ``tdml tune`` in a subprocess, with
the same ``--set`` overrides, trial count, sampler seed, a fresh MLflow store and Optuna
storage each, and the teacher trained by the study's ``train_teacher`` block before the search.
Trials per minute are counted from the first trial's start to the last trial's end (teacher
training and process start-up excluded; the whole command's wall time is reported too).
Rounds alternate before/after so machine noise hits both. The table and every number are
logged as an MLflow run (experiment ``tdml-benchmarks``) in the current tracking store.

    OMP_NUM_THREADS=1 python benchmarks/bench_trials_per_minute.py --study synthetic --n-trials 10
    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_trials_per_minute.py \\
        --study etth1 --n-trials 6 --set base.train.max_batches=80
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from tdml import tracking
from results_file import publish

REPO = Path(__file__).resolve().parents[1]
BEFORE = "8de3ed6"  # the tree the fast-distillation issue measured (before the teacher cache)


def checkout(commit: str, work: Path) -> Path:
    path = work / f"tdml-{commit}"
    if not path.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), commit], check=True,
                       capture_output=True)
    return path


def run_side(code: Path, study: str, n_trials: int, sets: list[str], work: Path) -> dict:
    """One `tdml tune` of ``code``'s study file in a fresh store; trials/min from Optuna's clock."""
    store = Path(tempfile.mkdtemp(prefix="side-", dir=work))
    spec = code / "studies" / f"timedistill_{study}.yaml"
    storage = f"sqlite:///{store / 'optuna.db'}"
    env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
           "TDML_CACHE_DIR": str(store / "cache"), "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    for k in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "tdml.cli", "tune", "--study", str(spec), "--n-trials", str(n_trials),
           "--storage", storage, "--set", "finalize=false", "--set", "plots=false",
           *[a for s in sets for a in ("--set", s)]]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=store, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{code}: tdml tune failed ({p.returncode}):\n{p.stderr[-3000:]}")
    (name,) = optuna.get_all_study_names(storage)
    trials = [t for t in optuna.load_study(study_name=name, storage=storage).trials if t.state.is_finished()]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    per_trial = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    return {"trials": len(trials), "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "per_min": len(trials) / (span / 60), "median_trial_s": statistics.median(per_trial), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="synthetic", help="studies/timedistill_<study>.yaml")
    ap.add_argument("--before", default=BEFORE)
    ap.add_argument("--n-trials", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1, help="before/after pairs, alternating")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="override for both sides")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "tdml-bench-trials"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sides = {f"before ({args.before})": checkout(args.before, work), "after (this tree)": REPO}
    rows = []
    for r in range(args.rounds):
        for label, code in sides.items():
            res = run_side(code, args.study, args.n_trials, args.sets, work)
            rows.append({"round": r, "side": label, **res})
            print(f"round {r} {label}: {res}", flush=True)
    before = statistics.mean(x["per_min"] for x in rows if x["side"].startswith("before"))
    after = statistics.mean(x["per_min"] for x in rows if x["side"].startswith("after"))
    lines = [f"study timedistill_{args.study}, {args.n_trials} trials, overrides {args.sets or 'none'}",
             "| round | side | trials | pruned | trials/min | median trial s | command wall s |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['round']} | {x['side']} | {x['trials']} | {x['pruned']} | {x['per_min']:.2f} | "
              f"{x['median_trial_s']:.1f} | {x['wall_s']:.0f} |" for x in rows]
    lines.append(f"\nafter / before: **{after / before:.2f}x** trials per minute")
    table = "\n".join(lines)
    with tracking.start_run("tdml-benchmarks", f"trials per minute · {args.study}", "benchmark"):
        tracking.log_params({"study": args.study, "before": args.before, "n_trials": args.n_trials,
                             "overrides": " ".join(args.sets)})
        tracking.log_metrics({"trials_per_min_before": before, "trials_per_min_after": after,
                              "speedup": after / before})
        tracking.log_text(table, "trials_per_minute.md")
    publish(table, f"trials_per_minute_{args.study}.md")


if __name__ == "__main__":
    main()
