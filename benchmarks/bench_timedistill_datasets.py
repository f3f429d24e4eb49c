"""TimeDistill beyond ETTh1 (issue 24): teacher, MLP alone and MLP + TimeDistill with the shipped
defaults on ETTh1, ETTm1 and Weather, L = 720, H in {96, 192, 336, 720}, with the cost of every row.

Per dataset and horizon: the iTransformer teacher (retrained per seed), then the MLP student alone
(``method=none``, the same trainer, early-stopped on validation) and distilled through the
registry with the defaults a user gets from ``-P teacher=...`` alone (tdml/models/defaults.yaml).
``--seeds`` run at ``--full-horizons`` (3 at H = 96 by default), the first seed at the others.
The test split is read once per run. Each row records seconds per epoch and epochs run (from the
run's ``train_seconds`` / ``epochs_run``), so the table says what a dataset costs on CPU.

Resumable across sessions: every run is an MLflow run of ``--experiment`` tagged
``tdml.bench_key`` = ``<dataset>/<what>/H<h>/s<seed>`` (``<dataset>@<teacher>`` with ``--teacher-model``
other than iTransformer: ``--teacher-model moderntcn --datasets etth1`` is issue 24's item 2, with
the reference's ModernTCN alpha/beta row); a key already FINISHED is read back, not
re-run, so an interrupted benchmark continues where it stopped (commit the store; ``--report``
rebuilds the tables from it alone). ``--max-batches`` caps batches per epoch and is part of the
key's budget tag (``tdml.bench_budget``), so capped runs never stand in for full ones.

    cd benchmarks/results/timedistill_datasets && OMP_NUM_THREADS=1 TDML_DATA_DIR=../../../../shared/data \\
    MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db python ../../bench_timedistill_datasets.py --datasets ettm1 weather
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import mlflow

import teacher_vault
from registry_files import readable
from tdml import tracking
from tdml.runs.distill import distill_in_run
from tdml.runs.teacher import train_teacher_in_run

KEY, BUDGET = "tdml.bench_key", "tdml.bench_budget"
WHAT = {"teacher": "teacher {model}", "alone": "MLP alone (no teacher)", "distilled": "MLP + TimeDistill (defaults)"}
# the paper's averages over H in {96, 192, 336, 720} at L = 720 (third-party summaries; issue 24,
# ../shared/data/README.md): (MSE, MAE or None)
PUBLISHED = {"etth1": (0.43, 0.441), "ettm1": (0.348, None), "weather": (0.221, None)}


def _budget(args) -> str:
    return f"L{args.seq_len}-mb{args.max_batches}"


def finished(args) -> dict[str, mlflow.entities.Run]:
    """key -> the newest FINISHED run of that key under this budget."""
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id], f"attributes.status = 'FINISHED' and tags.`{BUDGET}` = "
                              f"'{_budget(args)}'", order_by=["attributes.start_time ASC"], max_results=5000)
    return {r.data.tags[KEY]: r for r in runs if KEY in r.data.tags}


def label(args, ds: str) -> str:
    """A dataset's key prefix: the dataset, with ``@<teacher>`` for a teacher other than iTransformer
    (so the iTransformer record stays valid and both tables come from one store)."""
    return ds if args.teacher_model == "itransformer" else f"{ds}@{args.teacher_model}"


def units(args):
    """(dataset, horizon, seed) in run order: every dataset's first seed at every horizon first."""
    for seed in args.seeds:
        for ds in args.datasets:
            for h in args.horizons:
                if seed == args.seeds[0] or h in args.full_horizons:
                    yield ds, h, seed


def run_all(args) -> None:
    track = {"experiment": args.experiment, "diagnostics": False}
    budget = {"progress": False, "max_batches": args.max_batches}
    tags = {BUDGET: _budget(args)}
    for ds, h, seed in units(args):
        done = finished(args)
        alias = f"bench{seed}"
        model, prefix = args.teacher_model, label(args, ds)
        key = f"{prefix}/teacher/H{h}/s{seed}"
        uri = f"models:/{ds}-{model}-L{args.seq_len}-H{h}@{alias}"
        students_left = any(f"{prefix}/{w}/H{h}/s{seed}" not in done for w in ("alone", "distilled"))
        vault = Path(args.out) / "teachers" / f"{prefix.replace('@', '-')}-H{h}-s{seed}"  # committed weights
        if key in done and students_left and not readable(uri):
            # a committed store on a fresh checkout: the teacher's files are not in it; the vault
            # has them if this teacher was saved there, else it is trained again
            if teacher_vault.holds(vault, done[key].data.tags.get(teacher_vault.ORIGIN_TAG, done[key].info.run_id)):
                restored = teacher_vault.restore(vault, args.experiment)
                name, _, version = restored[len("models:/"):].rpartition("/")
                mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
                print(f"{key}: restored from {vault}", flush=True)
            else:
                done.pop(key)
        if key not in done:
            with tracking.start_run(args.experiment, f"teacher {model} {ds} L{args.seq_len}-H{h} seed {seed}",
                                    "teacher", tags={KEY: key, **tags}):
                t = train_teacher_in_run({"data": {"dataset": ds, "seq_len": args.seq_len, "pred_len": h},
                                          "model": model, "tracking": {**track, "alias": alias},
                                          "train": {"seed": seed, **budget}})
            # the bench's own alias on the version just trained: a retrained teacher (same seed, so
            # not better on validation) would otherwise leave it on the version whose files are gone
            mlflow.MlflowClient().set_registered_model_alias(uri[len("models:/"):].partition("@")[0], alias,
                                                             t.version)
            teacher_vault.save(uri, vault)
        for what, extra in (("alone", {"method": "none"}), ("distilled", {})):
            key = f"{prefix}/{what}/H{h}/s{seed}"
            if key in done:
                continue
            with tracking.start_run(args.experiment, f"mlp {what} {ds} H{h} seed {seed}", "student",
                                    tags={KEY: key, **tags}):
                distill_in_run({"teacher": uri, "student": "mlp", **extra, "tracking": {**track, "register": False},
                                "train": {"seed": seed, **budget}})
            print(f"{key}: done", flush=True)


def _ms(vals: list[float]) -> str:
    return f"{statistics.mean(vals):.4f}" + (f" ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else "")


def report(args) -> str:
    done = finished(args)
    cells: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for key, run in done.items():
        ds, what, h, _ = key.split("/")
        cells.setdefault((ds, what, int(h[1:])), []).append(run.data.metrics)
    hs = args.horizons
    lines = [f"L = {args.seq_len}; test MSE / MAE, mean ± std over seeds (n in brackets; {len(args.seeds)} seeds at "
             f"H in {args.full_horizons}, 1 elsewhere){'; CAPPED at ' + str(args.max_batches) + ' batches/epoch' if args.max_batches else ''}.",
             "", "| dataset | run | " + " | ".join(f"H={h} MSE | H={h} MAE" for h in hs) +
             " | avg MSE | avg MAE | published avg MSE | s/epoch | epochs |", "|---|---|" + "---:|" * (2 * len(hs) + 5)]
    goals = []
    for base in args.datasets:
        ds, avgs = label(args, base), {}
        for what, text in WHAT.items():
            row, mse_h, mae_h, spe, eps = [], [], [], [], []
            for h in hs:
                ms = cells.get((ds, what, h), [])
                if not ms:
                    row += ["–", "–"]
                    continue
                row += [f"{_ms([m['test_mse'] for m in ms])} [{len(ms)}]", _ms([m["test_mae"] for m in ms])]
                mse_h.append(statistics.mean(m["test_mse"] for m in ms))
                mae_h.append(statistics.mean(m["test_mae"] for m in ms))
                spe += [m["train_seconds"] / max(m["epochs_run"], 1) for m in ms if "train_seconds" in m]
                eps += [m["epochs_run"] for m in ms if "epochs_run" in m]
            if not mse_h:
                continue
            full = len(mse_h) == len(hs)
            avgs[what] = statistics.mean(mse_h) if full else None
            # the published averages are the iTransformer teacher's students
            pub = PUBLISHED.get(base, (None, None))[0] if what == "distilled" and base == ds else None
            cost = f"{statistics.mean(spe):.1f} | {statistics.mean(eps):.0f}" if spe else "– | –"
            star = "" if full else "*"
            lines.append(f"| {ds} | {text.format(model=args.teacher_model)} | " + " | ".join(row) + f" | {statistics.mean(mse_h):.4f}{star} | "
                         f"{statistics.mean(mae_h):.4f}{star} | {pub if pub else '–'} | {cost} |")
        for h in hs:
            a, d = cells.get((ds, "alone", h)), cells.get((ds, "distilled", h))
            if a and d:
                ra, rd = statistics.mean(m["test_mse"] for m in a), statistics.mean(m["test_mse"] for m in d)
                goals.append(f"{ds} H={h}: distilled vs alone {rd / ra - 1:+.1%}")
        if avgs.get("distilled") and avgs.get("teacher"):
            goals.append(f"{ds} average: distilled vs teacher {avgs['distilled'] / avgs['teacher'] - 1:+.1%}"
                         + (f", vs published {avgs['distilled'] / PUBLISHED[base][0] - 1:+.1%}"
                            if base in PUBLISHED and base == ds else ""))
    lines += ["", "(* = not every horizon yet: the average is over the horizons run)", "", *goals]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["etth1", "ettm1", "weather"])
    ap.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022, 2023])
    ap.add_argument("--full-horizons", type=int, nargs="+", default=[96], help="horizons that get every seed")
    ap.add_argument("--seq-len", type=int, default=720)
    ap.add_argument("--teacher-model", default="itransformer",
                    help="the teacher (moderntcn: the reference's second teacher, its own alpha/beta row)")
    ap.add_argument("--experiment", default="tdml-bench-datasets")
    ap.add_argument("--max-batches", type=int, default=0, help="cap batches/epoch (smoke runs only)")
    ap.add_argument("--out", type=Path, default=Path("."), help="where table.md goes")
    ap.add_argument("--report", action="store_true", help="only rebuild the table from the MLflow record")
    args = ap.parse_args()
    if not args.report:
        run_all(args)
    table = report(args)
    print(table)
    (args.out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
