"""What an Optuna study over TimeDistill buys, and what pruning / a second worker cost.

Per dataset (``--datasets synthetic etth1``; the studies in ``studies/``, shrunk with ``--set``):

1. **search with pruning**: the study as shipped (synthetic: median pruner, ETTh1: Hyperband),
   ``--n-trials`` trials on validation, then its best trial re-run once on test;
2. **search without pruning**: the same study (same sampler seed, same trial count) with
   ``pruner: none``; no test evaluation;
3. **default**: one distill run with the resolved defaults (the defaults table's row for the
   study's data: e.g. ETTh1 alpha = beta = 2, tau 0.5, 3 scales, the student's lr) under the
   same base settings, scored on validation and test.

Workers (``--workers``, PostgreSQL at ``--pg-url``): the synthetic study (no pruning, no test
run, no plots) with ``--worker-trials`` trials by 1 ``tdml tune`` process, then the same number
split over 2 processes; trials/minute over the span from the first trial's start to the last
trial's end (process start-up excluded; also reported including it).

Everything is logged under one MLflow run (experiment ``tdml-benchmarks``; the studies are its
children); the table is printed and written to benchmarks/results/. Promotion is disabled and
nothing moves an alias, but the best trials' test re-runs register a version each.

    OMP_NUM_THREADS=1 python benchmarks/bench_tuning.py --datasets synthetic --n-trials 12 --workers
    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_tuning.py --datasets etth1 \\
        --n-trials 8 --set base.train.max_batches=60 --set base.train.epochs=4
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import yaml

from tdml import tracking, tuning
from tdml.runs.distill import distill_in_run
from tdml.config import deep_merge, load_yaml, parse_overrides
from tdml.studies import spec_from_dict

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _raw(dataset: str, overrides: dict) -> dict:
    return deep_merge(load_yaml(REPO / "studies" / f"timedistill_{dataset}.yaml"), overrides)


def _default_run(spec, kind) -> dict:
    """The method's defaults (no search) under the study's base settings; val + test."""
    raw = copy.deepcopy(deep_merge(spec.base, {"teacher": spec.teacher, "loss": {}, "tracking": {"register": False}}))
    raw.get("train", {}).pop("lr", None)
    if spec.data:
        raw["data"] = deep_merge(raw.get("data", {}), spec.data)
    t0 = time.perf_counter()
    with tracking.start_run("", "defaults", "student", {"tdml.study": spec.name}, nested=True):
        s = distill_in_run(raw)
    return {"val_mse": s.metrics["best_val_mse"], "test_mse": s.metrics["test_mse"],
            "seconds": time.perf_counter() - t0}


def bench_dataset(dataset: str, n_trials: int, overrides: dict, workdir: Path) -> list[dict]:
    tag = uuid.uuid4().hex[:6]
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    raw = _raw(dataset, deep_merge(overrides, {"promotion": {"enabled": False}}))
    rows = []
    pruned_spec = spec_from_dict({**raw, "name": f"bench-{dataset}-{tag}-pruned"})
    kind = tuning.KINDS.get(pruned_spec.kind)(pruned_spec)
    kind.validate()
    kind.prepare()  # the teacher, trained once here if the study says how and it is missing
    r = tuning.tune(pruned_spec, n_trials=n_trials, storage=storage)
    final = r.finals[0]["metrics"] if r.finals else {}
    rows.append({"dataset": dataset, "variant": f"search, pruner={pruned_spec.pruner.name}",
                 "trials": n_trials, "pruned": r.n_trials["pruned"], "seconds": r.search_seconds,
                 "val_mse": r.best[0]["values"]["val_mse"] if r.best else float("nan"),
                 "test_mse": final.get("test_mse", float("nan")),
                 "best_params": r.best[0]["params"] if r.best else {}})
    nopr = spec_from_dict({**raw, "name": f"bench-{dataset}-{tag}-nopruning", "pruner": {"name": "none"},
                           "finalize": False})
    r2 = tuning.tune(nopr, n_trials=n_trials, storage=storage)
    rows.append({"dataset": dataset, "variant": "search, pruner=none", "trials": n_trials,
                 "pruned": r2.n_trials["pruned"], "seconds": r2.search_seconds,
                 "val_mse": r2.best[0]["values"]["val_mse"] if r2.best else float("nan"),
                 "test_mse": float("nan"), "best_params": r2.best[0]["params"] if r2.best else {}})
    d = _default_run(pruned_spec, kind)
    rows.append({"dataset": dataset, "variant": "default alpha=beta=2 (no search)", "trials": 1, "pruned": 0,
                 "seconds": d["seconds"], "val_mse": d["val_mse"], "test_mse": d["test_mse"], "best_params": {}})
    return rows


def _span_minutes(study: optuna.Study) -> float:
    done = [t for t in study.trials if t.datetime_complete is not None]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    return (end - start).total_seconds() / 60


def bench_workers(pg_url: str, n_trials: int, overrides: dict, workdir: Path) -> list[dict]:
    raw = _raw("synthetic", deep_merge(overrides, {"pruner": {"name": "none"}, "finalize": False, "plots": False}))
    spec = spec_from_dict({**raw, "name": "bench-workers-probe"})
    tuning.KINDS.get(spec.kind)(spec).prepare()  # teacher present before any worker starts
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore",
           "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_EXPERIMENT_ID", None)  # set by mlflow.set_experiment in this process
    rows = []
    for workers in (1, 2):
        name = f"bench-workers-{workers}-{uuid.uuid4().hex[:6]}"
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**raw, "name": name}))
        tuning.create_or_load_study(spec_from_dict({**raw, "name": name}), pg_url)
        per = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "tdml.cli", "tune", "--study", str(path), "--storage",
                                   pg_url, "--n-trials", str(k)], env=env, cwd=workdir,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for k in per]
        errs = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - t0
        if any(p.returncode for p in procs):
            raise SystemExit("a worker failed:\n" + "\n".join(e[-2000:] for e in errs))
        study = optuna.load_study(study_name=name, storage=pg_url)
        n = sum(t.state.is_finished() for t in study.trials)
        rows.append({"workers": workers, "trials": n, "wall_s": wall, "per_min": n / _span_minutes(study),
                     "per_min_incl_startup": n / (wall / 60)})
        optuna.delete_study(study_name=name, storage=pg_url)
    return rows


def _table(rows: list[dict], wrows: list[dict]) -> str:
    out = ["| dataset | variant | trials | pruned | search wall (s) | best val MSE | its test MSE |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['dataset']} | {r['variant']} | {r['trials']} | {r['pruned']} | {r['seconds']:.1f} | "
                   f"{r['val_mse']:.4f} | {r['test_mse']:.4f} |")
    for r in rows:
        if r["best_params"]:
            out.append(f"\n{r['dataset']} / {r['variant']}: best params "
                       + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["best_params"].items()))
    if wrows:
        out += ["", "| PostgreSQL workers | trials | wall (s) | trials/min (trial span) | trials/min (incl. start-up) |",
                "|---:|---:|---:|---:|---:|"]
        out += [f"| {r['workers']} | {r['trials']} | {r['wall_s']:.1f} | {r['per_min']:.2f} | {r['per_min_incl_startup']:.2f} |"
                for r in wrows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="*", default=["synthetic"], choices=["synthetic", "etth1"])
    ap.add_argument("--n-trials", type=int, default=12)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override in the study specs, e.g. base.train.epochs=4 (repeatable)")
    ap.add_argument("--workers", action="store_true", help="also measure 1 vs 2 workers on PostgreSQL")
    ap.add_argument("--worker-trials", type=int, default=6)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    overrides = deep_merge({"base": {"train": {"progress": False}}, "train_teacher": {"train": {"progress": False}}},
                           parse_overrides(args.set))
    workdir = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    rows, wrows = [], []
    with tracking.start_run("tdml-benchmarks", "bench-tuning", "benchmark",
                            {"tdml.bench_args": " ".join(sys.argv[1:])}):
        for ds in args.datasets:
            rows += bench_dataset(ds, args.n_trials, overrides, workdir)
        if args.workers:
            wrows = bench_workers(args.pg_url, args.worker_trials, overrides, workdir)
        for r in rows:
            key = f"{r['dataset']}_{r['variant'].split(',')[-1].strip().split(' ')[0].replace('=', '_')}"
            tracking.log_metrics({f"{key}_val_mse": r["val_mse"], f"{key}_seconds": r["seconds"],
                                  f"{key}_pruned": r["pruned"], **({f"{key}_test_mse": r["test_mse"]}
                                                                   if r["test_mse"] == r["test_mse"] else {})})
        for r in wrows:
            tracking.log_metrics({f"workers{r['workers']}_trials_per_min": r["per_min"],
                                  f"workers{r['workers']}_wall_s": r["wall_s"]})
        table = _table(rows, wrows)
        tracking.log_text(table, "bench_tuning.md")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"tuning_{'_'.join(args.datasets)}.md"
    out.write_text(f"`{' '.join(['python', 'benchmarks/bench_tuning.py', *sys.argv[1:]])}`\n\n{table}\n")
    print(table)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
