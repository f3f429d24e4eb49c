"""MemKD and six KD baselines on UCR datasets, run as the MemKD paper ran them, in its table layout.

Per dataset (smallest first):

1. teacher: ``--teacher-seeds`` LSTM teachers at the full budget, the best on validation AUC-PRC
   aliased and distilled from (tdml.selection); every seed's validation and test numbers are
   reported (``teacher_all``);
2. per student method (Base, KD, FitNet, RKD, AT, DKD, DT2W, MemKD): an Optuna study
   ``memkd-bench-<dataset>-<method>`` (tdml.tuning, TPE seeded, median pruner) over λd
   (``loss.weight``) and the method's own hyper-parameters (benchmarks/memkd_protocol.py,
   ``SPACES``), ``--n-trials`` validation-only trials (test never read); or, with ``--search
   grid``, the paper's search: the λd grid ``LAMBDA_GRID`` for every method (short : long =
   1 : 1, other hyper-parameters at their defaults), each point the mean over ``--search-seeds``
   (one child run per seed), study ``memkd-bench-<dataset>-<method>-grid``; a search left
   unfinished is continued only with its own teacher (``memkd_protocol.study_name``: a
   re-selected teacher starts ``...-t<teacher run id>``);
3. the chosen setting with every ``--seeds`` student seed, scored on test.

The record: MLflow (experiment ``bench-memkd-full``; one parent run per invocation, study runs
with one child per trial, final runs tagged ``tdml.bench_key``), the Optuna storage
``<out>/optuna.db`` and ``<out>/records.jsonl`` (one line per teacher seed / final run). A
rerun with the same ``--out`` resumes: finished trials and final runs are skipped; a dataset
whose teacher selection did not finish, or whose recorded teacher is not in the current registry
(a fresh checkout: the databases are not committed), selects it again. Tables: ``<out>/table.md`` (+ CSVs).

    OMP_NUM_THREADS=1 TDML_DATA_DIR=../shared/data \\
    MLFLOW_TRACKING_URI=sqlite:///$PWD/benchmarks/results/memkd_full/mlflow.db \\
        python benchmarks/bench_memkd.py --out benchmarks/results/memkd_full

(the defaults are the paper's budget: <= 500 epochs, early stopping on validation CE, patience 50).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import teacher_vault
from registry_files import readable
from paired import ci_text, excludes_zero, paired_ci
from memkd_protocol import LAMBDA_GRID, PRUNERS, SPACES, final_run, pick, recover_finals, search
from tdml import tracking
from tdml.models.defaults import default_train
from tdml.reporting import METHOD_LABELS, PUBLISHED_AUC_PRC, results_table
from tdml.selection import select_teacher

DATASETS = ["ItalyPowerDemand", "MoteStrain", "Trace", "SwedishLeaf", "ShapesAll"]  # small first
METHODS = ["none", "kd", "fitnet", "rkd", "at", "dkd", "dt2w", "memkd"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="student seeds")
    p.add_argument("--teacher-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--n-trials", type=int, default=8, help="Optuna trials per method and dataset")
    p.add_argument("--trial-seed", type=int, default=0, help="train.seed of the trials")
    p.add_argument("--search", choices=["tpe", "grid"], default="tpe",
                   help="tpe: --n-trials over SPACES (λd and each method's own); grid: the paper's λd grid "
                        "(memkd_protocol.LAMBDA_GRID, short : long = 1 : 1) for every method, each point "
                        "the mean over --search-seeds")
    p.add_argument("--search-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--pruner", choices=sorted(PRUNERS), default="none",
                   help="the searches' pruner: none (the paper's grid prunes nothing), or median (what "
                        "memkd_full ran; it cost RKD and AT 5-6 points on SwedishLeaf)")
    p.add_argument("--teacher-epochs", type=int, default=500, help="cap (paper: <= 500)")
    p.add_argument("--student-epochs", type=int, default=500, help="cap (paper: <= 500)")
    p.add_argument("--patience", type=int, default=50, help="early-stopping patience on validation CE")
    p.add_argument("--student-patience", type=int, default=None,
                   help="the students' patience, if not --patience (the paper gives none; e.g. = the "
                        "epoch cap: train every run to the cap and keep the best validation-CE checkpoint)")
    p.add_argument("--student-lr", type=float, default=None, help="default: tdml/models/defaults.yaml")
    p.add_argument("--teacher-lr", type=float, default=None, help="default: tdml/models/defaults.yaml")
    p.add_argument("--teacher-grad-clip", type=float, default=None, help="default: defaults.yaml (0 = off)")
    p.add_argument("--max-batches", type=int, default=0, help=">0 caps batches per epoch (smoke runs)")
    p.add_argument("--experiment", default="bench-memkd-full")
    p.add_argument("--out", default="benchmarks/results/memkd_full")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the tables from <out>/records.jsonl and searches.json, no training")
    return p.parse_args(argv)


def _train(model: str, epochs: int, lr, patience: int, seed: int, max_batches: int, grad_clip=None) -> dict:
    t = {"epochs": epochs, "patience": patience, "seed": seed, "lr_schedule": "constant", "progress": False,
         "max_batches": max_batches, "lr": lr}  # lr None: the shipped default (defaults.yaml)
    if grad_clip is not None:
        t["grad_clip"] = grad_clip
    return {k: v for k, v in t.items() if v is not None}


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rec_path, search_path = out / "records.jsonl", out / "searches.json"
    records = _live([json.loads(line) for line in rec_path.read_text().splitlines()] if rec_path.exists() else [])
    searches: dict = json.loads(search_path.read_text()) if search_path.exists() else {}
    if args.report_only:
        print(write_report(records, searches, args, out))
        return 0
    storage = f"sqlite:///{out / 'optuna.db'}"
    t_start = time.perf_counter()

    def add(rec: dict) -> None:
        records.append(rec)
        with rec_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def key(r) -> str:
        return f"{r['dataset']}/{r['method']}/seed{r['seed']}"

    have = {key(r) for r in records if r["method"] in SPACES}
    for rec in recover_finals(args.experiment, have):
        add(rec)
    patience = args.patience if args.student_patience is None else args.student_patience
    student_train = _train("lstm_student", args.student_epochs, args.student_lr, patience, args.trial_seed,
                           args.max_batches)
    with tracking.start_run(args.experiment, "bench-memkd-full", "benchmark") as parent:
        tracking.log_params({"bench": {k: (" ".join(map(str, v)) if isinstance(v, list) else v)
                                       for k, v in vars(args).items()}, "student_train": student_train})
        for ds in args.datasets:
            teacher = [r for r in records if r["dataset"] == ds and r["method"] == "teacher"]
            vault = out / "teachers" / ds  # committed: the teacher's weights outlive this store
            if teacher and _resolves(teacher[-1]["uri"]):
                teacher_uri = teacher[-1]["uri"]
            elif teacher and teacher_vault.holds(vault, teacher[-1]["run_id"]):  # a fresh checkout: the same teacher
                teacher_uri = teacher_vault.restore(vault, args.experiment)
                print(f"[{ds}] teacher {teacher[-1]['uri']} restored from {vault} as {teacher_uri}", flush=True)
                add({**teacher[-1], "uri": teacher_uri})
            else:
                if teacher:  # recorded, but neither in this tracking store nor in the vault
                    print(f"[{ds}] teacher {teacher[-1]['uri']} is not in this tracking store: selecting "
                          f"again (its old records are superseded)", flush=True)
                    add({"dataset": ds, "method": RESET})  # appended, not rewritten: other processes append too
                    records[:] = _live(records)
                teacher_uri = _select_teacher(ds, args, add)
                teacher_vault.save(teacher_uri, vault)
            for method in args.methods:
                c = search(ds, method, teacher_uri, student_train, args.n_trials, storage, args.experiment,
                           pruner=args.pruner, grid_seeds=args.search_seeds if args.search == "grid" else None)
                # merged with the file, whose entries are newer than ours (other processes write it too)
                on_disk = json.loads(search_path.read_text()) if search_path.exists() else {}
                searches = {**searches, **on_disk, f"{ds}/{method}": c.__dict__}
                search_path.write_text(json.dumps(searches, indent=1))
                print(f"[{ds}] {method}: {c.n_trials} trials ({c.n_pruned} pruned), best val AUC-PRC "
                      f"{c.best_val_auc_prc:.4f} at {c.params} ({time.perf_counter() - t_start:.0f} s)", flush=True)
                for seed in args.seeds:
                    done = [r for r in records if r["method"] == method and key(r) == f"{ds}/{method}/seed{seed}"
                            and r.get("params", {}) == c.params]
                    if done:
                        continue
                    rec = final_run(c, teacher_uri, {**student_train, "seed": seed}, seed, args.experiment)
                    add(rec)
                    print(f"[{ds}] {method} seed {seed}: test AUC-PRC {rec['test_auc_prc']:.4f} "
                          f"({rec['epochs_run']:.0f} epochs, {time.perf_counter() - t_start:.0f} s)", flush=True)
            write_report(records, searches, args, out)  # partial table per dataset
        wall = time.perf_counter() - t_start
        report = write_report(records, searches, args, out)
        with tempfile.TemporaryDirectory() as tmp:  # tables, records, searches (not the databases)
            for f in [*out.glob("table*"), out / "records.jsonl", out / "searches.json"]:
                shutil.copy(f, tmp)
            tracking.log_artifacts(tmp, "results")
        tracking.log_metrics({"bench_wall_seconds": wall})
        print(report)
        print(f"parent run {parent.info.run_id}; this invocation {wall / 60:.1f} min")
    return 0


def _resolves(uri: str) -> bool:
    """Whether the recorded teacher ``models:/<name>/<version>`` can be loaded in this store."""
    return readable(uri)


RESET = "teacher_reset"  # a records.jsonl line: the dataset's earlier teacher lines are superseded


def _live(records: list[dict]) -> list[dict]:
    """``records`` without the teacher lines a later ``teacher_reset`` line of their dataset
    superseded (student runs stay: they carry their own teacher numbers), and without the resets."""
    out: list[dict] = []
    for r in records:
        if r["method"] == RESET:
            out = [o for o in out if not (o["dataset"] == r["dataset"] and o["method"] in ("teacher", "teacher_all"))]
        else:
            out.append(r)
    return out


def _reported(raw: list[dict]) -> list[dict]:
    """``_live(raw)``, except that a dataset's teacher lines are those in force when its first
    distilled student line was written: a later re-selection (a fresh checkout whose store lacks
    the teacher) must not relabel the students trained under the earlier one."""
    in_force: dict[str, list[dict]] = {}
    used: dict[str, list[dict]] = {}
    for r in raw:
        d, m = r["dataset"], r["method"]
        if m == RESET:
            in_force[d] = []
        elif m in ("teacher", "teacher_all"):
            in_force.setdefault(d, []).append(r)
        elif m in SPACES and m != "none" and d not in used:
            used[d] = list(in_force.get(d, []))
    return ([r for r in _live(raw) if not (r["method"] in ("teacher", "teacher_all") and r["dataset"] in used)]
            + [r for lines in used.values() for r in lines])


def _select_teacher(ds: str, args, add) -> str:
    raw = {"data": {"dataset": f"ucr:{ds}"}, "model": "lstm_teacher",
           "train": _train("lstm_teacher", args.teacher_epochs, args.teacher_lr, args.patience, 0, args.max_batches,
                           args.teacher_grad_clip),
           "tracking": {"latency_repeats": 5, "experiment": args.experiment, "diagnostics_html": False}}
    t_sel = time.perf_counter()
    sel = select_teacher(raw, args.teacher_seeds, metric="auc_prc", mode="max")
    per_teacher = (time.perf_counter() - t_sel) / len(sel.runs)  # selection included
    for seed, s in sel.runs.items():
        add({"dataset": ds, "method": "teacher_all", "seed": seed, **pick(s.metrics), "run_wall_s": per_teacher,
             "n_params": s.n_params, "latency_ms": s.latency_ms, "run_id": s.run_id})
    best = sel.runs[sel.best_seed]
    uri = f"models:/{sel.name}/{sel.best_version}"
    add({"dataset": ds, "method": "teacher", "seed": sel.best_seed, **pick(best.metrics), "n_params": best.n_params,
         "latency_ms": best.latency_ms, "run_id": best.run_id, "uri": uri, "val_scores": sel.scores})
    print(f"[{ds}] teacher seeds val AUC-PRC {sel.scores} -> seed {sel.best_seed} "
          f"(test AUC-PRC {best.metrics['test_auc_prc']:.4f})", flush=True)
    return uri


def _time_split(records, searches: dict, datasets) -> str:
    """Wall time per dataset: teachers, searches (finished trials), final runs; and the share of
    the final runs outside training (data, teacher cache, test, latency, MLflow)."""
    rows = ["| dataset | teachers (min) | searches (min) | final runs (min) | finals' training | outside training |",
            "|---|---:|---:|---:|---:|---:|"]
    for d in datasets:
        te = sum(r.get("run_wall_s", 0) for r in records if r["dataset"] == d and r["method"] == "teacher_all")
        se = sum(v["search_s"] for k, v in searches.items() if k.split("/")[0] == d)
        fin = [r for r in records if r["dataset"] == d and r["method"] in SPACES]
        wall, train = sum(r["run_wall_s"] for r in fin), sum(r.get("train_seconds", 0) for r in fin)
        if te or se or wall:
            share = f"{1 - train / wall:.0%}" if wall else "–"
            rows.append(f"| {d} | {te / 60:.1f} | {se / 60:.1f} | {wall / 60:.1f} | {train / 60:.1f} | {share} |")
    return "\n".join(rows) + "\n"


def _current(records, searches: dict) -> list[dict]:
    """Final runs of the setting each study chose now (a study resumed with more trials may have
    moved its choice: older final runs then stay in records.jsonl but out of the table)."""
    keep = []
    for r in records:
        s = searches.get(f"{r['dataset']}/{r['method']}")
        if r["method"] in ("teacher", "teacher_all") or (s is not None and r.get("params", {}) == s["params"]):
            keep.append(r)
    return keep


def _table(records, args, metric: str, rank_teacher: bool = False):
    methods = ["teacher", "teacher_all", *args.methods]
    ds = [d for d in args.datasets if any(r["dataset"] == d for r in records)]
    ref = ("teacher_all",) if rank_teacher else ("teacher", "teacher_all")
    return results_table(records, metric, methods=methods, datasets=ds, reference=ref, published=PUBLISHED_AUC_PRC)


def _pct(v: float) -> str:
    return "–" if v != v else f"{100 * v:.2f}"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _vs_base(records, args) -> str:
    """Each method against Base (``none``), test AUC-PRC x 100 paired by student seed: the mean
    difference with its Student-t 95 % CI (positive = better than Base)."""
    rows = ["| dataset | method | pairs | Δ vs Base [95 % CI] | CI excludes 0 |", "|---|---|---:|---:|---|"]
    for d in args.datasets:
        by = {(r["method"], r["seed"]): 100 * r["test_auc_prc"] for r in records
              if r["dataset"] == d and r["method"] in SPACES}
        for m in (m for m in args.methods if m != "none"):
            seeds = [s for s in args.seeds if (m, s) in by and ("none", s) in by]
            if not seeds:
                continue
            mean, lo, hi = paired_ci([by[m, s] for s in seeds], [by["none", s] for s in seeds])
            rows.append(f"| {d} | {METHOD_LABELS.get(m, m)} | {len(seeds)} | {ci_text(mean, lo, hi, 2)} | "
                        f"{excludes_zero(lo, hi, lower_is_better=False)} |")
    return "\n".join(rows) + "\n"


def _search_words(args) -> str:
    if getattr(args, "search", "tpe") == "grid":
        return (f"the paper's grid search (λd ∈ {LAMBDA_GRID}, short : long = 1 : 1, every point the mean "
                f"validation AUC-PRC over student seeds {args.search_seeds})")
    return f"{args.n_trials} Optuna trials (TPE, validation AUC-PRC only, student seed {args.trial_seed})"


def write_report(records, searches: dict, args, out: Path) -> str:
    """The tables over every dataset with records (not only this invocation's ``--datasets``:
    a run on one dataset must not drop the others from the shared table files)."""
    rec_path = out / "records.jsonl"  # the append-only file, resets included, is the source of truth
    if rec_path.exists():
        records = _reported([json.loads(line) for line in rec_path.read_text().splitlines()])
    records = _current(records, searches)
    present = {r["dataset"] for r in records}
    args = argparse.Namespace(**{**vars(args), "datasets": [d for d in DATASETS if d in present]
                                 + [d for d in args.datasets if d in present and d not in DATASETS]})
    parts = []
    for metric in ("test_auc_prc", "test_auc_roc", "test_accuracy"):
        t = _table(records, args, metric)
        t.to_csv(out / f"table_{metric}.csv")
        if metric == "test_auc_prc" and len(t.cells):
            t.figure("MemKD benchmark: test AUC-PRC × 100").write_html(str(out / "table_test_auc_prc.html"),
                                                                       include_plotlyjs=True)
        if metric != "test_auc_prc":  # the paper's table is AUC-PRC only
            t.cells["published"] = float("nan")
        text = t.to_markdown(published_label="published")
        if metric == "test_auc_prc" and len(t.cells):
            tt = _table(records, args, metric, rank_teacher=True).summary.set_index("method")
            row = " | ".join("–" if m == "teacher_all" or tt.loc[m, "datasets"] == 0 else f"{tt.loc[m, 'avg_rank']:.2f}"
                             for m in t.methods)
            lines = text.split("\n")
            at = next(i for i, line in enumerate(lines) if line.startswith("| wins"))
            lines.insert(at + 1, "| avg rank, teacher ranked too | " + row + " |")
            text = "\n".join(lines)
        parts.append(f"### {metric}\n\n" + text)
    # the teachers distilled from: every seed, validation (selection) and test
    teach = ["| dataset | seed | val AUC-PRC | val CE | test AUC-PRC | test AUC-ROC | test acc | best epoch / run | chosen |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    chosen = {(r["dataset"], r["seed"]) for r in records if r["method"] == "teacher"}
    for r in (r for r in records if r["method"] == "teacher_all"):
        teach.append(f"| {r['dataset']} | {r['seed']} | {100 * r['best_val_auc_prc']:.2f} | {r['best_val_ce']:.3f} | "
                     f"{100 * r['test_auc_prc']:.2f} | {100 * r['test_auc_roc']:.2f} | {100 * r['test_accuracy']:.2f} | "
                     f"{r['best_epoch']:.0f} / {r['epochs_run']:.0f} | {'✓' if (r['dataset'], r['seed']) in chosen else ''} |")
    # chosen hyper-parameters per method and dataset
    hp = ["| dataset | method | trials (pruned) | best trial | best val AUC-PRC | chosen setting | search (min) "
          "| final runs (min) |", "|---|---|---:|---:|---:|---|---:|---:|"]
    for k, v in searches.items():
        fin = sum(r["run_wall_s"] for r in records if f"{r['dataset']}/{r['method']}" == k)
        setting = ", ".join(f"{p.split('.')[-1]}={_fmt(x)}" for p, x in v["params"].items()) or "(nothing searched)"
        hp.append(f"| {v['dataset']} | {METHOD_LABELS.get(v['method'], v['method'])} | {v['n_trials']} ({v['n_pruned']}) | "
                  f"{'–' if v['best_trial'] is None else v['best_trial']} | {_pct(v['best_val_auc_prc'])} | "
                  f"{setting} | {v['search_s'] / 60:.1f} | {fin / 60:.1f} |")
    # efficiency: parameters and CPU latency (batch 32, median) of teacher vs student
    eff = ["| dataset | teacher params | student params | ratio | teacher ms (b32) | student ms (b32) | speedup |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for d in args.datasets:
        st = [r for r in records if r["dataset"] == d and r["method"] in SPACES]
        if not st:
            continue
        tp, sp = st[0]["teacher_n_params"], st[0]["n_params"]
        tl = sum(r["teacher_latency_ms"] for r in st) / len(st)
        sl = sum(r["latency_ms"] for r in st) / len(st)
        eff.append(f"| {d} | {tp:,} | {sp:,} | {tp / sp:.0f}× | {tl:.2f} | {sl:.2f} | {tl / sl:.0f}× |")
    lrs = {d: default_train("lstm_student", d).get("lr") for d in args.datasets}
    header = (f"# MemKD benchmark, the paper's protocol\n\nteacher lstm_teacher (3×100), student lstm_student "
              f"(1×8); datasets {', '.join(args.datasets)}; teacher = best of seeds {args.teacher_seeds} by "
              f"validation AUC-PRC (`teacher`; `teacher_all` = every teacher seed); per method and dataset "
              f"{_search_words(args)}, then "
              f"student seeds {args.seeds} at the chosen setting, test read only there; epochs ≤ "
              f"{args.teacher_epochs} / ≤ {args.student_epochs}, early stopping on validation CE, patience "
              f"{args.patience}{'' if args.student_patience is None else f' (students {args.student_patience})'}; lr teacher {args.teacher_lr or 'default'}, student "
              f"{args.student_lr or f'default {sorted(set(lrs.values()))}'}.\n\n")
    text = (header + "\n".join(parts) + "\n### teachers\n\n" + "\n".join(teach) + "\n\n### chosen settings\n\n"
            + "\n".join(hp) + "\n\n### against Base, paired by student seed\n\n" + _vs_base(records, args)
            + "\n### efficiency\n\n" + "\n".join(eff) + "\n\n### wall time\n\n"
            + _time_split(records, searches, args.datasets))
    (out / "table.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
