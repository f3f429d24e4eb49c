"""The Python API (``import tdml``): one function per CLI command, the command's options as
keywords (``tdml.options``: the one list the CLI and MLproject use too), ``set={"train.patience":
3}`` for any other config field, typed results, typed errors (``tdml.errors``).

    t = tdml.train_teacher(data=df, model="itransformer", seq_len=96, pred_len=24)
    s = tdml.distill(teacher=t.model_uri, alpha=0.5)
    m = tdml.load_model(s.model_uri); m.predict(x)   # [B, L, C] float32 -> [B, H, C], raw units

Every run is an MLflow run in the active tracking store (``MLFLOW_TRACKING_URI``), exactly as
the CLI's; the CLI only parses, calls these, and prints.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from tdml import options, tracking
from tdml.config import DEFAULT_EXPERIMENT, deep_merge, flatten, load_yaml, to_dict
from tdml.errors import ConfigError, TdmlError


def _data_options(data: Any, given: dict[str, Any]) -> dict[str, Any]:
    """``data=``: a DataFrame (registered in memory, logged with its digest), a CSV path, or a
    dataset name (catalog, 'synthetic', 'ucr:<Name>', 'runs:/<id>/synthetic')."""
    if data is None:
        return given
    if given.get("data_path"):
        raise ConfigError("give the data once: data= or data_path=, not both")
    from tdml.data import frames

    if isinstance(data, pd.DataFrame):
        return {**given, "data_path": frames.register(data)}
    is_file = isinstance(data, str) and (data.lower().endswith(".csv") or Path(data).is_file())
    if isinstance(data, Path) or is_file:
        return {**given, "data_path": str(data)}
    if isinstance(data, str):
        return {**given, "dataset": data}
    raise ConfigError(f"data must be a pandas DataFrame, a CSV path or a dataset name, got {type(data).__name__}")


def _raw(table: options.Table, where: str, given: dict[str, Any], set: dict | None, config: str | None,
         progress: bool) -> dict[str, Any]:
    raw = options.raw_config(table, given, config, set, where)
    return raw if progress else deep_merge(raw, {"train": {"progress": False}})


@dataclass
class DryRun:
    """What a run would use, resolved but not started (``dry_run=True``, ``--dry-run``): every
    config value and the layer it came from (class default, dataset default, teacher's data,
    teacher's task, defaults table, entry default, study base, trial, explicit, run mode)."""

    command: str
    config: dict[str, Any]  # dotted key -> value
    sources: dict[str, str]  # dotted key -> layer

    def __str__(self) -> str:
        width = max(map(len, self.config), default=0)
        return "\n".join([f"{self.command}: resolved config (dry run, nothing trained)"] +
                         [f"  {k:<{width}} = {v!r:<24} # {self.sources.get(k, 'class default')}"
                          for k, v in self.config.items()])


def _dry(command: str, cfg, sources: dict[str, str]) -> DryRun:
    return DryRun(command, flatten(to_dict(cfg)), sources)


def train_teacher(data: Any = None, *, set: dict | None = None, config: str | None = None,
                  progress: bool = True, dry_run: bool = False, **opts: Any):
    """Train a teacher, register it (``<dataset>-<model>-L<seq>-H<pred>``) and return its
    ``RunSummary`` (``run_id``, ``metrics``, ``model_uri`` = ``models:/<name>/<version>``);
    with ``dry_run`` only its resolved ``DryRun``."""
    from tdml.resolve import resolve_teacher
    from tdml.runs.teacher import train_teacher_in_run

    raw = _raw(options.TEACHER_OPTS, "tdml.train_teacher", _data_options(data, opts), set, config, progress)
    if dry_run:
        sources: dict[str, str] = {}
        return _dry("train-teacher", resolve_teacher(raw, sources), sources)
    exp = raw.get("tracking", {}).get("experiment", DEFAULT_EXPERIMENT)
    with tracking.start_run(exp, f"teacher-{raw.get('model', 'itransformer')}", "teacher"):
        return train_teacher_in_run(raw)


def distill(teacher: str | None = None, data: Any = None, *, set: dict | None = None, config: str | None = None,
            progress: bool = True, dry_run: bool = False, **opts: Any):
    """Distil a student from a registered teacher (``models:/<name>@<alias>`` or ``/<version>``);
    method and student default from the teacher's task. Returns the student's ``RunSummary``
    (with ``dry_run``: its ``DryRun``; the teacher's registered settings are read)."""
    from tdml.resolve import Layers, resolve_distill
    from tdml.runs.distill import TEACHER_REQUIRED, distill_in_run

    given = _data_options(data, {**opts, **({"teacher": teacher} if teacher else {})})
    raw = _raw(options.DISTILL_OPTS, "tdml.distill", given, set, config, progress)
    if dry_run:
        if not raw.get("teacher"):
            raise ConfigError(TEACHER_REQUIRED)
        sources: dict[str, str] = {}
        return _dry("distill", resolve_distill(Layers(explicit=raw), tracking.load_model(raw["teacher"])[1],
                                               sources), sources)
    exp = raw.get("tracking", {}).get("experiment", DEFAULT_EXPERIMENT)
    with tracking.start_run(exp, "student", "student"):
        return distill_in_run(Layers(explicit=raw))


def main(data: Any = None, *, set: dict | None = None, config: str | None = None, progress: bool = True,
         dry_run: bool = False, **opts: Any):
    """The main job: teacher -> registry -> the same MLP alone and distilled; the comparison
    table (Markdown) it prints and logs. With ``dry_run``: the teacher's and the distilled
    student's ``DryRun`` (the student's against the teacher it would train)."""
    from tdml.runs.main import run_main_in_run

    given = _data_options(data, opts)
    raw_s = {k: v for k, v in _raw(options.MAIN_OPTS, "tdml.main", given, set, config, progress).items()
             if k in ("loss", "tracking", "train")}
    raw_s.setdefault("train", {}).pop("lr", None)  # lr is the teacher's; the student keeps its own
    raw_t = _raw(options.TEACHER_OPTS, "tdml.main", {k: v for k, v in given.items() if k in options.TEACHER_OPTS},
                 set, config, progress)
    if dry_run:
        return _main_dry_run(raw_t, raw_s)
    exp = raw_t.get("tracking", {}).get("experiment", DEFAULT_EXPERIMENT)
    with tracking.start_run(exp, "main", "pipeline"):
        return run_main_in_run(raw_t, raw_s)


def _main_dry_run(raw_t: dict[str, Any], raw_s: dict[str, Any]) -> dict[str, DryRun]:
    from tdml.resolve import ENTRY_DEFAULTS, Layers, resolve_distill, resolve_teacher

    st: dict[str, str] = {}
    tcfg = resolve_teacher(Layers(entry=ENTRY_DEFAULTS["main"], explicit=raw_t), st)
    meta = {"data_config": to_dict(tcfg.data), "task": "forecast", "model": {"name": tcfg.model}}
    ss: dict[str, str] = {}
    scfg = resolve_distill(Layers(explicit={**raw_s, "teacher": "models:/(the teacher above)@" + tcfg.tracking.alias}),
                           meta, ss)
    return {"teacher": _dry("main: teacher", tcfg, st), "student": _dry("main: student distilled", scfg, ss)}


def condense(data: Any = None, *, set: dict | None = None, config: str | None = None, verbose: bool = False,
             dry_run: bool = False, **opts: Any):
    """Condense a dataset into a few synthetic windows; returns the ``CondenseSummary``
    (the set is ``runs:/<run_id>/synthetic``, itself a dataset name); ``dry_run``: its ``DryRun``."""
    from tdml.runs.condense import run_condense
    from tdml.resolve import resolve_condense

    raw = options.raw_config(options.CONDENSE_OPTS, _data_options(data, opts), config, set, "tdml.condense")
    if dry_run:
        sources: dict[str, str] = {}
        return _dry("condense", resolve_condense(raw, sources), sources)
    with _quiet("tdml.train", not verbose):  # hundreds of tiny evaluation fits
        return run_condense(raw)


def tune(study: str | Path, *, n_trials: int | None = None, storage: str | None = None, n_jobs: int = 1,
         set: dict | None = None, progress: bool = True, dry_run: bool = False):
    """Run (or resume) an Optuna study (``studies/*.yaml``; ``set`` overrides its fields);
    returns the ``TuneResult`` (``dry_run``: the validated spec as a ``DryRun``). A spec error is
    a FAILED study run and a ConfigError."""
    from tdml.studies import load_spec
    from tdml.tuning.kinds import KINDS
    from tdml.tuning.search import tune as run_tune

    overrides = options.raw_config({}, {}, None, set)  # dotted keys -> the spec's sections
    if not progress:
        overrides = deep_merge(overrides, {"base": {"train": {"progress": False}}})
    try:
        spec = load_spec(study, overrides)
        KINDS.get(spec.kind)(spec).validate()
        if n_jobs < 1:
            raise ConfigError(f"n_jobs must be >= 1, got {n_jobs}")
    except TdmlError:  # before any storage or trial: a FAILED study run that says why
        with tracking.start_run("tdml-tuning", "study-invalid", "study", {"tdml.study_file": str(study)}):
            raise
    if dry_run:
        from tdml.resolve import config_sources

        return _dry("tune", spec, config_sources(spec, [("study file", load_yaml(study)), ("explicit", overrides)]))
    return run_tune(spec, n_trials, storage, n_jobs)


def report(experiment: str = DEFAULT_EXPERIMENT, family: str = "", dry_run: bool = False) -> pd.DataFrame | DryRun:
    """Log a ``report`` run (table + Pareto plot of the experiment's teachers and students) and
    return its table."""
    from tdml.comparison import log_report

    _require_experiment(experiment)
    if dry_run:
        return DryRun("report", {"experiment": experiment, "family": family},
                      {"experiment": "explicit", "family": "explicit" if family else "class default"})
    with tracking.start_run(experiment, f"report {experiment}", "report"):
        return log_report(experiment, family)


def runs(experiment: str = DEFAULT_EXPERIMENT, family: str = "") -> pd.DataFrame:
    """One row per finished teacher / student run of ``experiment`` that read its test split:
    metrics, size, latency and what it is (no run is logged)."""
    from tdml.comparison import collect

    _require_experiment(experiment)
    return collect(experiment, family)


def _require_experiment(experiment: str) -> None:
    names = tracking.experiment_names()
    if experiment not in names:  # checked first: a report run would create the experiment
        raise ConfigError(f"experiment {experiment!r} does not exist in {tracking.tracking_uri()}; "
                          f"experiments: {', '.join(names) or '(none)'}")


@dataclass
class Model:
    """A registered tdml model, loaded: ``predict`` takes raw windows [B, L, C] (or a dated
    frame for a calendar-feature model) and returns forecasts [B, H, C] in raw units (class
    scores [B, K] for a classifier). ``module`` is the torch model (eval mode)."""

    uri: str
    name: str
    version: str
    module: Any
    meta: dict[str, Any]

    def predict(self, x: Any) -> np.ndarray:
        from tdml.serving import _Predictor

        return _Predictor(self.module, self.meta).predict(x)


def load_model(uri: str) -> Model:
    """A ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` URI as a ``Model``; a URI that
    does not resolve raises RegistryError naming it and the registered names that exist."""
    from tdml.errors import RegistryError

    try:
        module, meta, mv = tracking.load_model(uri)
    except RegistryError as e:
        raise RegistryError(f"cannot load {uri}: {e}") from None
    return Model(uri, mv.name, str(mv.version), module, meta)


@contextmanager
def _quiet(logger: str, on: bool) -> Iterator[None]:
    log = logging.getLogger(logger)
    old = log.level
    if on:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(old)
