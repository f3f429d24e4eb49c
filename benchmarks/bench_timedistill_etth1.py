"""TimeDistill on ETTh1 with the shipped defaults: teacher, MLP alone, MLP + TimeDistill.

L = 720, H in {96, 192, 336, 720}, several seeds (the teacher is retrained per seed and
horizon). Every student setting is the default a user gets from ``-P teacher=...`` alone
(tdml/models/defaults.yaml, row etth1: alpha = beta = 2, reference KL, lr 0.01 type1, up to
100 epochs, patience 5); the baseline is the same student with ``method=none`` under the
same trainer, early-stopped on validation. DMLP (the paper's student) runs at the horizons
given by ``--dmlp-horizons``. The test split is read once per run.

Resumable: every run is an MLflow run of ``--experiment`` tagged ``tdml.bench_key``; a key
already FINISHED there is read back instead of re-run, so an interrupted benchmark continues
where it stopped and ``--report`` rebuilds the table from the record alone.

    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_timedistill_etth1.py \
        --seeds 2021 2022 2023 --horizons 96 192 336 720
"""

from __future__ import annotations

import argparse
import statistics
import mlflow

from results_file import publish
from tdml import tracking
from tdml.runs.distill import distill_in_run
from tdml.runs.teacher import train_teacher_in_run
from tdml.resolve import resolve_teacher

KEY_TAG = "tdml.bench_key"
STUDENTS = {"alone": {"method": "none"}, "distilled": {}}  # {} = the method's defaults
CACHED = {"distilledcache": {"teacher_cache": "disk"}}  # --cached: the teacher-output cache
LABELS = {"teacher": "teacher iTransformer", "mlp-alone": "MLP alone (no teacher)",
          "mlp-distilled": "MLP + TimeDistill (defaults)", "dmlp-alone": "DMLP alone (no teacher)",
          "dmlp-distilled": "DMLP + TimeDistill (defaults)",
          "mlp-distilledcache": "MLP + TimeDistill, teacher_cache=disk"}
# third-party summaries of the paper's ETTh1 average over the four horizons (docs/methods.md §1.7)
PUBLISHED_AVG = {"mlp-distilled": (0.43, 0.441)}


def finished(experiment: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=5000)
    return {r.data.tags[KEY_TAG]: r for r in runs if KEY_TAG in r.data.tags}


def run_all(args) -> None:
    track = {"experiment": args.experiment, "diagnostics": False}
    budget = {"progress": False, "max_batches": args.max_batches}
    for seed in args.seeds:
        for h in args.horizons:
            done = finished(args.experiment)
            key = f"teacher-H{h}-s{seed}"
            alias = f"bench{seed}"
            if key not in done:
                with tracking.start_run(args.experiment, f"teacher itransformer etth1 L720-H{h} seed {seed}",
                                        "teacher", tags={KEY_TAG: key}):
                    train_teacher_in_run(resolve_teacher({
                        "data": {"dataset": "etth1", "seq_len": 720, "pred_len": h, "batch_size": 32},
                        "model": "itransformer", "tracking": {**track, "alias": alias},
                        "train": {"seed": seed, **budget}}))
            uri = f"models:/etth1-itransformer-L720-H{h}@{alias}"
            students = ["mlp"] + (["dmlp"] if h in args.dmlp_horizons else [])
            for student in students:
                for label, extra in {**STUDENTS, **(CACHED if args.cached and student == "mlp" else {})}.items():
                    key = f"{student}-{label}-H{h}-s{seed}"
                    if key in done:
                        continue
                    with tracking.start_run(args.experiment, f"{student} {label} etth1 H{h} seed {seed}",
                                            "student", tags={KEY_TAG: key}):
                        distill_in_run({"teacher": uri, "student": student, **extra,
                                        "tracking": {**track, "register": False}, "train": {"seed": seed, **budget}})


def report(experiment: str, horizons: list[int]) -> str:
    done = finished(experiment)
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    seeds: set[str] = set()
    for key, run in done.items():
        what, h, seed = key.rsplit("-", 2)
        m = run.data.metrics
        rows.setdefault((what, int(h[1:])), []).append((m["test_mse"], m["test_mae"]))
        seeds.add(seed[1:])

    def ms(vals):
        return f"{statistics.mean(vals):.4f}" + (f" ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else "")

    head = "| run | " + " | ".join(f"H={h} MSE | H={h} MAE" for h in horizons) + " | avg MSE | avg MAE | published avg |"
    lines = [f"ETTh1, L=720, seeds {', '.join(sorted(seeds))} (n per cell in brackets), shipped defaults, "
             f"test split read once per run", "", head, "|---|" + "---:|" * (2 * len(horizons) + 3)]
    for what, label in LABELS.items():
        cells, avg = [], []
        for h in horizons:
            vals = rows.get((what, h), [])
            if not vals:
                cells += ["–", "–"]
                continue
            cells += [f"{ms([v[0] for v in vals])} [{len(vals)}]", ms([v[1] for v in vals])]
            avg.append((statistics.mean(v[0] for v in vals), statistics.mean(v[1] for v in vals)))
        if not avg:
            continue
        complete = len(avg) == len(horizons)
        a_mse = f"{statistics.mean(a[0] for a in avg):.4f}" if complete else "–"
        a_mae = f"{statistics.mean(a[1] for a in avg):.4f}" if complete else "–"
        pub = PUBLISHED_AVG.get(what)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {a_mse} | {a_mae} | "
                     f"{f'{pub[0]} / {pub[1]}' if pub else '–'} |")
    lines += ["", "distilled vs alone, test MSE, per horizon (mean over seeds): " + ", ".join(
        f"H={h}: {statistics.mean(v[0] for v in rows[(s + '-distilled', h)]) / statistics.mean(v[0] for v in rows[(s + '-alone', h)]) - 1:+.1%} ({s})"
        for h in horizons for s in ("mlp", "dmlp") if (s + "-distilled", h) in rows and (s + "-alone", h) in rows)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022, 2023])
    ap.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720])
    ap.add_argument("--dmlp-horizons", type=int, nargs="*", default=[96])
    ap.add_argument("--experiment", default="tdml-bench-etth1-defaults")
    ap.add_argument("--max-batches", type=int, default=0, help="cap batches/epoch (smoke runs only)")
    ap.add_argument("--report", action="store_true", help="only rebuild the table from the MLflow record")
    ap.add_argument("--cached", action="store_true", help="also the MLP with teacher_cache=disk")
    args = ap.parse_args()
    if not args.report:
        run_all(args)
    publish(report(args.experiment, args.horizons), "timedistill_etth1.md")


if __name__ == "__main__":
    main()
