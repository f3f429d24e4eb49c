"""The MemKD paper's protocol for benchmarks/bench_memkd.py: per method and dataset, an Optuna
study (tdml.tuning: one trial = one validation-only distill run, a child MLflow run) chooses
λd and the method's own hyper-parameters on validation AUC-PRC; then the chosen setting is run
with every student seed and scored on test (the only runs that read it).

Resuming: the study lives in an Optuna RDB storage (a SQLite file under the benchmark's
``--out``); a rerun counts the trials already finished (complete or pruned) and runs only the
rest, and a trial whose process died is retried (tdml.tuning's heartbeat). Final runs are
tagged ``tdml.bench=memkd-full`` and ``tdml.bench_key=<dataset>/<method>/seed<n>`` in MLflow;
finished ones are skipped (from ``records.jsonl``, or rebuilt from MLflow if that lost a line).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

import teacher_vault
from tdml import tracking
from tdml.config import deep_merge, set_dotted
from tdml.runs.distill import distill_in_run
from tdml.selection import best_key
from tdml.studies import spec_from_dict
from tdml.tuning import tune

BENCH_TAG = "memkd-full"
LAMBDA = {"weight": {"type": "float", "low": 0.01, "high": 10.0, "log": True}}  # λd (λc = 1)
TEMPERATURE = {"temperature": {"type": "float", "low": 1.0, "high": 10.0, "log": True}}
# What each method's study searches (fields of the loss's Config; the rest stay at their defaults:
# RKD distance : angle = 1 : 2, AT p = 2, DT2W gamma 0.1 plain, MemKD 32 pairs, short weight 1).
SPACES: dict[str, dict[str, dict]] = {
    "none": {},  # Base: the student alone, nothing to search
    "kd": {**LAMBDA, **TEMPERATURE},
    "fitnet": dict(LAMBDA),
    "rkd": dict(LAMBDA),
    "at": dict(LAMBDA),
    "dkd": {**LAMBDA, **TEMPERATURE, "alpha": {"type": "float", "low": 0.25, "high": 4.0, "log": True},
            "beta": {"type": "float", "low": 0.5, "high": 16.0, "log": True}},
    "dt2w": dict(LAMBDA),
    "memkd": {**LAMBDA, "long_weight": {"type": "float", "low": 0.0, "high": 2.0}},
}
# The paper's search (issue 23): λc = 1, λd on a grid, short and long terms 1 : 1; every method
# searched the same way (λd only, its other hyper-parameters at their defaults), each candidate
# scored as the mean over --search-seeds seeds.
LAMBDA_GRID = [0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0]
GRID_SPACES: dict[str, dict[str, dict]] = {
    m: ({"weight": {"type": "categorical", "choices": LAMBDA_GRID}} if m != "none" else {}) for m in SPACES}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# --pruner: none (default: the paper's grid prunes nothing), or what memkd_full ran ("median":
# stop a trial whose best validation AUC-PRC after epoch 50 is below the median of the earlier
# trials at that epoch). On SwedishLeaf the median pruner stopped 20 of 24 MemKD trials at epochs
# 51-225 of runs that peak at 250-500, and unpruned searches chose better RKD and AT settings
# (docs/results.md).
PRUNERS = {"median": {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 50}, "none": {"name": "none"}}


@dataclass
class Choice:
    dataset: str
    method: str
    params: dict[str, Any]  # dotted config keys -> chosen value ({} for Base)
    n_trials: int = 0
    n_pruned: int = 0
    best_trial: int | None = None
    best_val_auc_prc: float = float("nan")
    search_s: float = 0.0  # sum of the finished trials' durations (over every invocation)
    trials: list[dict] = field(default_factory=list)  # number, state, value, params


def student_base(train: dict, experiment: str) -> dict:
    return {"student": "lstm_student", "train": train,
            "tracking": {"latency_repeats": 5, "experiment": experiment}}


def search(dataset: str, method: str, teacher_uri: str, train: dict, n_trials: int, storage: str,
           experiment: str, sampler_seed: int = 0, pruner: str = "none", grid_seeds: list[int] | None = None) -> Choice:
    """Run (or resume) the method's study until ``n_trials`` trials finished (TPE over SPACES), or
    with ``grid_seeds`` until the λd grid is exhausted (each point the mean over those seeds);
    return its choice."""
    space = (GRID_SPACES if grid_seeds else SPACES)[method]
    if not space:
        return Choice(dataset, method, {})
    if grid_seeds:
        n_trials = len(LAMBDA_GRID)
    name = study_name(f"memkd-bench-{dataset}-{method}" + ("-grid" if grid_seeds else ""), teacher_uri,
                      n_trials, storage)
    done = _trials(name, storage)
    left = n_trials - sum(t.state in FINISHED for t in done)
    if left > 0:
        # a resumed study gets a fresh sampler stream (seed + trials so far), not a replay of the
        # first random startup points
        spec = study_spec(name, method, teacher_uri, train, left, storage, experiment, sampler_seed + len(done),
                          min(4, n_trials), pruner)
        if grid_seeds:  # the grid sampler skips the points already run; no pruning of a grid
            spec.update(search_space={"loss": space}, sampler={"name": "grid", "seed": sampler_seed},
                        pruner=PRUNERS["none"], seeds=list(grid_seeds))
        tune(spec_from_dict(spec), n_trials=left)
    study = optuna.load_study(study_name=name, storage=storage)
    study.set_user_attr(TEACHER_ATTR, teacher_vault.origin_run_id(teacher_uri))
    return choice(dataset, method, study)


def _study(name: str, storage: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _trials(name: str, storage: str) -> list:
    study = _study(name, storage)
    return study.get_trials(deepcopy=False) if study else []


TEACHER_ATTR = "teacher_run_id"  # a study's user attribute: the teacher its trials distilled from


def study_name(base: str, teacher_uri: str, n_trials: int, storage: str) -> str:
    """``base`` if that study is complete (its trials and the finals chosen from it belong to the
    teacher in force then) or was started with this teacher, else ``base-t<teacher run id>``: an
    unfinished search is continued only with the teacher it started with. A teacher re-selected
    in a fresh checkout is another teacher (CPU training does not reproduce bit for bit); one
    restored from the committed vault (``teacher_vault``) is the same, and keeps its origin run
    id -- which, unlike the registry version, is unique across stores."""
    study = _study(base, storage)
    if study and sum(t.state in FINISHED for t in study.get_trials(deepcopy=False)) >= n_trials:
        return base
    origin = teacher_vault.origin_run_id(teacher_uri)
    if study and study.user_attrs.get(TEACHER_ATTR) == origin:
        return base
    return f"{base}-t{origin[:8]}"


def study_spec(name: str, method: str, teacher_uri: str, train: dict, n_trials: int, storage: str,
               experiment: str, sampler_seed: int, n_startup: int, pruner: str) -> dict:
    """The study file (as a dict) of one method's search: validation AUC-PRC only, no finals."""
    return {"name": name, "kind": "distill", "experiment": experiment, "teacher": teacher_uri,
            "base": {**student_base(train, experiment), "method": method},
            "search_space": {"loss": SPACES[method]},
            "sampler": {"name": "tpe", "seed": sampler_seed, "n_startup_trials": n_startup},
            "pruner": PRUNERS[pruner], "n_trials": n_trials,
            "objectives": [{"metric": "val_auc_prc", "direction": "maximize"}],
            "plots": False, "finalize": False, "storage": {"url": storage}}


def choice(dataset: str, method: str, study: optuna.Study) -> Choice:
    """The best complete trial by validation AUC-PRC; ties (small validation sets saturate at
    1.0) go to the lower validation CE of the trial's restored checkpoint, then the earlier trial."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    c = Choice(dataset, method, {}, n_trials=sum(t.state in FINISHED for t in trials),
               n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
               search_s=sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                            if t.state in FINISHED and t.datetime_start and t.datetime_complete),
               trials=[{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
                       for t in trials])
    if not complete:
        return c
    by_number = {t.number: t for t in sorted(complete, key=lambda t: t.number)}
    scores = {n: float(t.value) for n, t in by_number.items()}
    tied = [n for n, v in scores.items() if v == max(scores.values())]
    ce = {n: _val_ce(by_number[n], study) if n in tied else float("inf") for n in scores}  # read only where it decides
    best = by_number[best_key(scores, "max", ce)]
    c.params, c.best_trial, c.best_val_auc_prc = dict(best.params), best.number, float(best.value)
    return c


def _val_ce(t, study: optuna.Study | None = None) -> float:
    """The trial run's best validation CE; for a trial over seeds logged before the trial run
    carried the seeds' mean (tdml.tuning.objective), the mean of its seed runs'. Kept in the
    study's user attributes once read, so the committed Optuna storage alone decides a tie on a
    fresh checkout (the MLflow store, hundreds of MB of epoch metrics, is not committed)."""
    key = f"best_val_ce/trial{t.number}"  # a study attribute: a finished trial's own cannot change
    if study is not None and key in study.user_attrs:
        return float(study.user_attrs[key])
    ce = _val_ce_from_mlflow(t)
    if study is not None and ce != float("inf"):
        study.set_user_attr(key, ce)
    return ce


def _val_ce_from_mlflow(t) -> float:
    run_id = t.user_attrs.get("mlflow_run_id")
    try:
        client = MlflowClient()
        run = client.get_run(run_id)
        if "best_val_ce" in run.data.metrics:
            return float(run.data.metrics["best_val_ce"])
        seeds = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
        ce = [r.data.metrics["best_val_ce"] for r in seeds if "best_val_ce" in r.data.metrics]
        return float(sum(ce) / len(ce)) if ce else float("inf")
    except Exception:  # noqa: BLE001 - a missing run just loses the tie-break
        return float("inf")


def final_raw(c: Choice, teacher_uri: str, train: dict, seed: int, experiment: str) -> dict:
    """The chosen setting with one student seed, scored on test; no model logged or registered."""
    raw = deep_merge(student_base(train, experiment), {"teacher": teacher_uri, "method": c.method,
                                                       "train": {"seed": seed}})
    for key, value in c.params.items():
        set_dotted(raw, key, value)
    return deep_merge(raw, {"tracking": {"final_split": "test", "register": False, "log_model": False,
                                         "diagnostics_html": False}})


def final_run(c: Choice, teacher_uri: str, train: dict, seed: int, experiment: str) -> dict:
    raw = final_raw(c, teacher_uri, train, seed, experiment)
    key = f"{c.dataset}/{c.method}/seed{seed}"
    t0 = time.perf_counter()
    with tracking.start_run(experiment, f"{c.dataset}-{c.method}-seed{seed}", "student",
                            tags={"tdml.bench": BENCH_TAG, "tdml.bench_key": key,
                                  "tdml.bench_params": json.dumps(c.params, sort_keys=True)}):
        s = distill_in_run(raw)
    return {"dataset": c.dataset, "method": c.method, "seed": seed, "params": c.params, **pick(s.metrics),
            "run_wall_s": time.perf_counter() - t0, "n_params": s.n_params, "latency_ms": s.latency_ms,
            "teacher_n_params": s.extra["teacher_n_params"], "teacher_latency_ms": s.extra["teacher_latency_ms"],
            "run_id": s.run_id}


def pick(metrics: dict) -> dict:
    keys = ("test_auc_prc", "test_auc_roc", "test_accuracy", "test_ce", "best_val_auc_prc", "best_val_ce",
            "best_val_accuracy", "epochs_run", "best_epoch", "train_seconds")
    return {k: float(metrics[k]) for k in keys if k in metrics}


def finished_finals(client: MlflowClient, experiment_ids: list[str]):
    """The benchmark's finished final runs (newest first) as (key, dataset, method, seed, run)."""
    runs = client.search_runs(experiment_ids, f"tags.`tdml.bench` = '{BENCH_TAG}' and attributes.status = 'FINISHED'",
                              max_results=5000)
    for r in runs:
        key = r.data.tags.get("tdml.bench_key", "")
        if key:
            ds, method, seed = key.split("/")
            yield key, ds, method, int(seed[len("seed"):]), r


def recover_finals(experiment: str, have: set[str]) -> list[dict]:
    """Final runs that finished in MLflow but have no line in records.jsonl (a crash between the
    two): their records rebuilt from the run's metrics and tags."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    out = []
    for key, ds, method, seed, r in finished_finals(client, [exp.experiment_id]):
        if key in have or "test_auc_prc" not in r.data.metrics:
            continue
        m = r.data.metrics
        out.append({"dataset": ds, "method": method, "seed": seed,
                    "params": json.loads(r.data.tags.get("tdml.bench_params", "{}")), **pick(m),
                    "run_wall_s": (r.info.end_time - r.info.start_time) / 1000, "n_params": int(m.get("n_params", 0)),
                    "latency_ms": m.get("cpu_latency_ms_b32", float("nan")),
                    "teacher_n_params": int(m.get("teacher_n_params", 0)),
                    "teacher_latency_ms": m.get("teacher_cpu_latency_ms_b32", float("nan")),
                    "run_id": r.info.run_id, "recovered": True})
        have.add(key)
    return out
