"""Optuna studies over distillation settings, tracked in MLflow.

One ``tune`` call = one MLflow parent run (role ``study``) and one child run per trial
(role ``trial``, nested through ``parent_run_id`` so it is correct from worker threads).
Each trial trains on train, is checkpointed and scored on validation (the test split is
never read during the search), reports its monitor metric every epoch to the pruner, and
records its MLflow run id on the Optuna trial (user attr ``mlflow_run_id``). After the
search the best trial(s) are re-run once with ``final_split=test`` in a ``final`` child run
that registers a new version without moving any alias; the promotion gate then moves the
alias only if the candidate beats the current holder on validation.

Kinds of study are registered in ``KINDS``: a kind turns trial parameters into one run.
``distill`` (TimeDistill and every other loss in ``tdml.distill``) is the default.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FixedTrial, FrozenTrial, TrialState
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from tdml import pipelines, tracking
from tdml.config import TrainConfig, coerce_dataclass, deep_merge, set_dotted, to_dict
from tdml.errors import ConfigError, RegistryError, Stopped, TdmlError
from tdml.promotion import better, gate
from tdml.registry import Registry
from tdml.resolve import Layers, resolve_distill, resolve_teacher
from tdml.studies import Distribution, StudySpec, load_spec

log = logging.getLogger(__name__)


@contextmanager
def _experimental_ok():
    """Silence Optuna's ExperimentalWarning for the heartbeat API we rely on (scoped, not global)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


# ----------------------------------------------------------------------------- kinds
class StudyKind:
    """What a study searches over. Subclasses register with ``@KINDS.register(name)``."""

    def __init__(self, spec: StudySpec):
        self.spec = spec

    def validate(self) -> None:
        """Static checks of the spec (keys, ranges, objective names); before anything runs."""

    def prepare(self) -> None:
        """Resolve external resources (e.g. the teacher) inside the study run, before trials."""

    def search_space(self, trial) -> dict[str, Any]:
        """Raw config overrides for one trial: one ``suggest_component`` per component."""
        raw: dict[str, Any] = {}
        for comp, dists in self.spec.search_space.components().items():
            for key, value in suggest_component(trial, comp, dists).items():
                set_dotted(raw, key, value)
        return raw

    def monitor(self) -> str | None:
        """The per-epoch validation metric reported to the pruner (a key of val_metrics)."""
        m = self.spec.objectives[0].metric
        return m[len("val_"):] if m.startswith("val_") else None

    def run(self, overrides: dict[str, Any], callbacks, final: bool) -> pipelines.RunSummary:
        """One run inside the active MLflow run: validation-only unless ``final``."""
        raise NotImplementedError


# Kinds defined in other packages register themselves when their module is imported; they are
# named here, not imported, so tuning does not depend on them (no import cycle).
KINDS: Registry[type[StudyKind]] = Registry("study kind", plugins=("tdml.condense.study",))


def suggest_component(trial, component: str, dists: dict[str, Distribution]) -> dict[str, Any]:
    """``{dotted config key: value}`` for one component; Optuna param names are those keys."""
    keys = {name: f"{component}.{name}" if name else component for name in dists}
    return {keys[name]: dist.suggest(trial, keys[name]) for name, dist in dists.items()}


RUN_METRICS = ("n_params", "cpu_latency_ms_b32", "param_ratio", "speedup")


@KINDS.register("distill")
class DistillKind(StudyKind):
    """A TimeDistill (or any registered loss) student against one registered teacher."""

    def validate(self) -> None:
        from tdml.distill import LOSSES
        from tdml.models import MODELS

        s, space = self.spec, self.spec.search_space
        base = resolve_distill(Layers(study_base={**s.base, "teacher": s.teacher or "models:/x@y"}))
        loss_cls = LOSSES.get(base.method)
        self._corners("loss", space.loss, loss_cls.Config, base.loss)
        self._corners("train", space.train, TrainConfig, to_dict(base.train))
        students = space.student.corners() if space.student else [base.student]
        for st in students:
            params = MODELS.get(st).Params
            self._corners("student_params", space.student_params, params, base.student_params)
        if not s.teacher:
            raise ConfigError("study: `teacher` is required (models:/<name>@<alias>); add a "
                              "`train_teacher:` block to have a missing one trained first")
        tracking.parse_model_uri(s.teacher)
        if s.train_teacher is not None:
            resolve_teacher(s.train_teacher)  # unknown keys / bad values fail now, not later
        for o in s.objectives:
            if not (o.metric.startswith("val_") or o.metric in RUN_METRICS):
                raise ConfigError(f"objective metric {o.metric!r} is not available to a distill study; "
                                  f"use val_<metric> (e.g. val_mse, val_mae) or one of {', '.join(RUN_METRICS)}")

    @staticmethod
    def _corners(comp: str, dists: dict[str, Distribution], cls, fixed: dict) -> None:
        valid = {f.name for f in dataclasses.fields(cls)}
        for name, dist in dists.items():
            if name not in valid:
                raise ConfigError(f"search_space.{comp}: unknown field {name!r}; valid: {', '.join(sorted(valid))}")
            for v in dist.corners():
                try:
                    coerce_dataclass(cls, {**fixed, name: v}, f"search_space.{comp}.{name}")
                except ConfigError as e:
                    raise ConfigError(f"search_space.{comp}.{name}: bad range, value {v!r} is invalid: {e}") from None

    def prepare(self) -> None:
        s = self.spec
        try:
            tracking.resolve_version(s.teacher)
            return
        except RegistryError as e:
            if s.train_teacher is None:
                raise ConfigError(f"study {s.name!r}: teacher {s.teacher} cannot be resolved ({e}). Train "
                                  f"and register it first (tdml train-teacher ...), or add a "
                                  f"`train_teacher:` block to the study to train it now") from None
        name, alias, _ = tracking.parse_model_uri(s.teacher)
        raw = deep_merge(s.train_teacher, {"tracking": {"alias": alias or "champion"}})
        with tracking.start_run("", "teacher", "teacher", {"tdml.study": s.name}, nested=True):
            t = pipelines.train_teacher_in_run(resolve_teacher(raw))
        got = t.registered.split("/")[1] if t.registered else None
        if got != name:
            raise ConfigError(f"study {s.name!r}: train_teacher registered {got!r} but teacher is "
                              f"{s.teacher}; make the train_teacher data/model match the URI's name")

    def run(self, overrides: dict[str, Any], callbacks, final: bool) -> pipelines.RunSummary:
        return pipelines.distill_in_run(self.layers(overrides, final), callbacks)

    def layers(self, overrides: dict[str, Any], final: bool) -> Layers:
        """A trial's settings: the study's base and data < the trial's values < the run mode."""
        s = self.spec
        base = {**s.base, "teacher": s.teacher, **({"data": deep_merge(s.base.get("data", {}), s.data)} if s.data else {})}
        # trials keep metrics, terms and CSV diagnostics; the HTML report only for final runs
        mode = {"tracking": {"final_split": "test" if final else "val", "register": final, "log_model": final, "alias": "",
                             "diagnostics_html": final}}
        return Layers(study_base=base, trial=overrides, run_mode=mode)


# ----------------------------------------------------------------------------- storage
def storage_url(spec: StudySpec, override: str | None = None) -> str:
    return override or spec.storage.url or os.environ.get("TDML_OPTUNA_STORAGE") or "sqlite:///optuna.db"


def artifact_dir(spec: StudySpec, url: str) -> Path:
    if spec.storage.artifact_dir:
        return Path(spec.storage.artifact_dir)
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        return db.with_name(db.stem + "-artifacts")
    return Path("optuna-artifacts")


def redact(url: str) -> str:
    """A storage URL safe to log (no password)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: log nothing of it
        return "<unparsable url>"


class RetryStaleTrial:
    """Heartbeat-stale trial (its worker died): close its MLflow run as KILLED, then retry it
    through Optuna's ``RetryHeartbeatStaleTrialCallback`` (same params, WAITING)."""

    def __init__(self, max_retry: int):
        with _experimental_ok():
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            try:
                tracking.mark_run_killed(run_id, f"worker died: Optuna trial {trial.number} of study "
                                                 f"{study.study_name!r} stopped beating; it is retried")
            except Exception as e:  # noqa: BLE001 - the retry must happen even if MLflow is elsewhere
                log.warning("could not close MLflow run %s of stale trial %d: %s", run_id, trial.number, e)
        self.retry(study, trial)


def _sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    s = spec.sampler
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=s.seed)
    return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                      multivariate=True)


def _pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
    if p.name == "hyperband":
        epochs = spec.base.get("train", {}).get("epochs")
        max_resource = int(epochs) if epochs else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, max_resource=max_resource,
                                              reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()


def pool_kwargs(url: str) -> dict[str, int]:
    """SQLAlchemy pool of one worker process on a server database: many workers x the default
    pool (5 + 10 overflow) would exhaust PostgreSQL's max_connections (100). A worker needs
    about two connections (trial writes + the heartbeat thread); n_jobs > 1 needs more."""
    if url.startswith("sqlite"):
        return {}
    return {"pool_size": int(os.environ.get("TDML_OPTUNA_POOL_SIZE", 2)),
            "max_overflow": int(os.environ.get("TDML_OPTUNA_MAX_OVERFLOW", 2))}


def _storage_error(url: str, e: BaseException) -> ConfigError:
    first = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    return ConfigError(f"cannot open the Optuna storage {redact(url)}: {type(e).__name__}: {first}. Use a "
                       f"SQLAlchemy URL such as sqlite:///optuna.db or postgresql+psycopg://user:pw@host:5432/db "
                       f"(pip install 'tdml[postgres]' for the driver) and check the database is reachable")


def create_or_load_study(spec: StudySpec, url: str | None = None) -> optuna.Study:
    """Create the storage and the study once (or load it: re-running resumes the study)."""
    url = storage_url(spec, url)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    st = spec.storage
    for attempt in range(5):  # workers starting together may race on creating tables / the study
        try:
            with _experimental_ok():  # heartbeats are "experimental" in Optuna since 2.x
                storage = RDBStorage(url, engine_kwargs=pool_kwargs(url), heartbeat_interval=st.heartbeat_interval,
                                     grace_period=st.grace_period,
                                     heartbeat_stale_trial_callback=RetryStaleTrial(st.max_retry))
            study = optuna.create_study(storage=storage, study_name=spec.name, sampler=_sampler(spec),
                                        pruner=_pruner(spec), directions=spec.directions, load_if_exists=True)
            break
        except (OperationalError, IntegrityError) as e:  # workers racing on tables / the study, or down
            if attempt == 4:
                raise _storage_error(url, e) from None
            time.sleep(0.5 + attempt)
        except (SQLAlchemyError, ImportError, ValueError) as e:  # unknown scheme, missing driver, bad URL
            raise _storage_error(url, e) from None
    want = [d.upper() for d in spec.directions]
    have = [d.name for d in study.directions]
    if want != have:
        raise ConfigError(f"study {spec.name!r} already exists in {redact(url)} with directions {have}, "
                          f"but the spec asks for {want}; rename the study or delete the old one")
    study.set_user_attr("objectives", [o.metric for o in spec.objectives])
    with _experimental_ok():
        study.set_metric_names([o.metric for o in spec.objectives])  # optuna-dashboard's axis labels
    return study


# ----------------------------------------------------------------------------- the search
class PruningReporter:
    """Epoch callback: report the monitor metric; raise TrialPruned when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str | None):
        self.trial, self.metric = trial, metric

    def __call__(self, epoch, train_terms, val_metrics, lr):
        if self.metric is None:
            return
        value = val_metrics[self.metric]
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch + 1}: val_{self.metric}={value:.5g}")


def make_objective(spec: StudySpec, kind: StudyKind, parent_run_id: str, store_dir: Path) -> Callable:
    monitor = kind.monitor() if not spec.multi else None  # Optuna prunes single-objective only
    store = optuna.artifacts.FileSystemArtifactStore(str(store_dir))

    def objective(trial: optuna.Trial):
        overrides = kind.search_space(trial)
        tags = {"tdml.study": spec.name, "tdml.trial_number": trial.number,
                "tdml.retry_of": _retried_from(trial)}
        with tracking.start_run("", f"trial {trial.number} · {spec.name}", "trial", tags, parent_run_id=parent_run_id,
                                stopped_on=(optuna.TrialPruned,)) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            trial.set_user_attr("mlflow_run_url", tracking.run_url(run.info.run_id, run.info.experiment_id))
            trial.set_user_attr("mlflow_parent_run_id", parent_run_id)
            try:
                summary = kind.run(overrides, [PruningReporter(trial, monitor)], final=False)
            except Stopped:  # this worker stops: the trial (FAIL) is queued again for any worker, now
                trial.study.enqueue_trial(trial.params, user_attrs={"tdml.retry_of_stopped": trial.number},
                                          skip_if_exists=False)
                raise
            values = [objective_value(summary, o.metric) for o in spec.objectives]
            # the trial's value(s) under their own names: a per-epoch metric such as val_mse
            # shows its last epoch in MLflow's run view, not the best checkpoint's score
            tracking.log_metrics({f"objective_{o.metric}": v for o, v in zip(spec.objectives, values)})
        _upload_diagnostics(trial, run.info.run_id, store)
        return values

    return objective


def objective_value(summary: pipelines.RunSummary, metric: str) -> float:
    """An objective's value from a run summary (its metrics, plus ``n_params``)."""
    values = {"n_params": float(summary.n_params), **summary.metrics}
    if metric not in values:
        raise ConfigError(f"objective metric {metric!r} was not produced by the run; it logged: "
                          f"{', '.join(sorted(values))}")
    return float(values[metric])


def _retried_from(trial: optuna.Trial) -> str:
    """The number of the stale trial this one retries ('' if none)."""
    frozen = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
              if t.number == trial.number]
    with _experimental_ok():
        n = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen[0]) if frozen else None
    return "" if n is None else str(n)


def _upload_diagnostics(trial, run_id: str, store) -> None:
    """The child run's diagnostics/ tables (CSV, and PNG if any) as Optuna artifacts of the trial,
    which optuna-dashboard previews. The HTML report (plotly.js embedded, ~5 MB) stays in MLflow."""
    mimes = {".csv": "text/csv", ".png": "image/png"}
    with tempfile.TemporaryDirectory() as tmp:
        local = tracking.download_run_artifacts(run_id, "diagnostics", tmp, required=False)
        for f in sorted(local.iterdir()) if local else []:
            if f.suffix in mimes:
                optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(f), study_or_trial=trial,
                                                 mimetype=mimes[f.suffix])


@dataclass
class TuneResult:
    study_name: str
    parent_run_id: str
    storage: str
    n_trials: dict[str, int]
    best: list[dict[str, Any]]  # number, params, values, mlflow_run_id
    finals: list[dict[str, Any]] = field(default_factory=list)
    promotion: dict[str, Any] | None = None
    seconds: float = 0.0  # the whole call
    search_seconds: float = 0.0  # study.optimize only (no plots, test run or promotion)


def tune(spec: StudySpec, n_trials: int | None = None, storage: str | None = None,
         n_jobs: int = 1) -> TuneResult:
    """Run (or resume) ``spec``'s study: search, then test the best, then the promotion gate."""
    kind = KINDS.get(spec.kind)(spec)
    kind.validate()
    url = storage_url(spec, storage)
    study = create_or_load_study(spec, url)  # once, before any worker thread starts
    store_dir = artifact_dir(spec, url)
    store_dir.mkdir(parents=True, exist_ok=True)
    n = n_trials or spec.n_trials
    t0 = time.perf_counter()
    tags = {"tdml.study": spec.name, "tdml.optuna_storage": redact(url), "tdml.optuna_study_id": str(study._study_id),
            "mlflow.note.content": f"Optuna study **{spec.name}** ({spec.kind}) in `{redact(url)}`; one child run "
                                   f"per trial. Watch it with `optuna-dashboard '{redact(url)}' --artifact-dir "
                                   f"{store_dir}`."}
    with tracking.start_run(spec.experiment, f"study {spec.name}", "study", tags) as parent:
        tracking.log_params({"study": _spec_params(spec), "tune": {"n_trials": n, "n_jobs": n_jobs}})
        kind.prepare()
        objective = make_objective(spec, kind, parent.info.run_id, store_dir)
        t_search = time.perf_counter()
        study.optimize(objective, n_trials=n, n_jobs=n_jobs, timeout=spec.timeout_s or None,
                       catch=(FloatingPointError,), gc_after_trial=n_jobs > 1)
        search_seconds = time.perf_counter() - t_search
        result = _summarize(spec, study, parent.info.run_id, url)
        result.search_seconds = search_seconds
        result.seconds = time.perf_counter() - t0
        tracking.log_metrics({"tune_seconds": result.seconds, "search_seconds": search_seconds,
                              "trials_per_minute": 60 * n / max(search_seconds, 1e-9)})
        if result.best and spec.finalize:
            result.finals = [_final_run(spec, kind, study, parent.info.run_id, b) for b in result.best[:spec.n_final]]
            if spec.promotion.enabled:
                result.promotion = promote(spec, result.finals)
            _log_report(spec)
    return result


def _log_report(spec: StudySpec) -> None:
    """The comparison report of the study's teacher family (the teacher, the final runs and any
    other tested student of it in the experiment), as artifacts of the study run."""
    from tdml.comparison import log_report  # plotly only when a report is written

    try:
        log_report(spec.experiment, tracking.parse_model_uri(spec.teacher)[0])
    except (ConfigError, RegistryError) as e:
        log.warning("no comparison report for study %s: %s", spec.name, e)


def _spec_params(spec: StudySpec) -> dict:
    d = to_dict(spec)
    d.pop("search_space")
    d["search_space"] = {f"{c}.{k}" if k else c: str(to_dict(v)) for c, ds in spec.search_space.components().items()
                         for k, v in ds.items()}
    return d


def _summarize(spec: StudySpec, study: optuna.Study, parent_run_id: str, url: str) -> TuneResult:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    tracking.log_metrics({f"trials_{k}": v for k, v in counts.items()})
    best = sorted(study.best_trials, key=lambda t: t.values[0] * (1 if spec.directions[0] == "minimize" else -1)) \
        if counts["complete"] else []
    rows = [{"number": t.number, "params": t.params, "values": dict(zip([o.metric for o in spec.objectives], t.values)),
             "mlflow_run_id": t.user_attrs.get("mlflow_run_id")} for t in best]
    if rows:
        top = rows[0]
        tracking.log_params({"best": top["params"]})
        tracking.log_metrics({f"best_{k}": v for k, v in top["values"].items()} | {"best_trial": top["number"]})
        tracking.set_tags({"tdml.best_trial": top["number"], "tdml.best_run_id": top["mlflow_run_id"]})
        tracking.log_dict({"best_trials": rows}, "best_trials.json")
    if spec.plots:
        _log_plots(spec, study)
    return TuneResult(spec.name, parent_run_id, redact(url), counts, rows)


def _log_plots(spec: StudySpec, study: optuna.Study) -> None:
    import optuna.visualization as vis

    first = spec.objectives[0].metric
    target = dict(target=lambda t: t.values[0], target_name=first) if spec.multi else {}
    plots = {"history": lambda: vis.plot_optimization_history(study, **target),
             "param_importances": lambda: vis.plot_param_importances(study, **target),
             "parallel_coordinate": lambda: vis.plot_parallel_coordinate(study, **target)}
    if spec.multi:
        plots["pareto_front"] = lambda: vis.plot_pareto_front(
            study, target_names=[o.metric for o in spec.objectives])
    skipped = []
    for name, make in plots.items():
        try:
            tracking.log_plotly_html(make(), f"{name}.html")
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # e.g. importances with < 2 trials
            skipped.append(f"{name}: {type(e).__name__}: {e}")
            log.warning("plot %s skipped: %s", name, e)
    if skipped:
        tracking.log_text("\n".join(skipped) + "\n", "plots/skipped.txt")


def _final_run(spec: StudySpec, kind: StudyKind, study: optuna.Study, parent_run_id: str,
               best: dict[str, Any]) -> dict[str, Any]:
    """Re-run a best trial's config once, scored on test, registering a version (no alias)."""
    overrides = kind.search_space(FixedTrial(best["params"]))
    tags = {"tdml.study": spec.name, "tdml.trial_number": best["number"], "tdml.trial_run_id": best["mlflow_run_id"]}
    with tracking.start_run("", f"final · trial {best['number']} · {spec.name}", "final", tags, parent_run_id=parent_run_id):
        s = kind.run(overrides, [], final=True)
    if s.version is None:
        raise TdmlError("the final run registered no model; check tracking.register in the study base")
    name = s.registered.split("/")[1]
    tracking.set_version_tags(name, s.version, {"tdml.study": spec.name, "tdml.trial_number": best["number"]})
    out = {"number": best["number"], "run_id": s.run_id, "registered_name": name, "version": s.version,
           "metrics": {k: v for k, v in s.metrics.items() if k.startswith(("test_", "best_val_"))}}
    tracking.log_metrics({f"final_{k}": v for k, v in out["metrics"].items()})
    study.set_user_attr(f"final_trial_{best['number']}", {"run_id": s.run_id, "version": s.version})
    return out


def promote(spec: StudySpec, finals: list[dict[str, Any]]) -> dict[str, Any]:
    """Move ``alias`` to the best final candidate only if it beats the current holder on
    validation: the same gate every registering run goes through (``tdml.promotion``)."""
    p = spec.promotion
    key = f"best_val_{p.metric}"
    missing = [f["number"] for f in finals if key not in f["metrics"]]
    if missing:
        raise ConfigError(f"promotion.metric {p.metric!r}: the final runs logged no {key}; "
                          f"use a validation metric of the task (e.g. mse, mae)")
    cand = finals[0]
    for f in finals[1:]:
        cand = f if better(f["metrics"][key], cand["metrics"][key], p.mode) else cand
    d = gate(cand["registered_name"], cand["version"], cand["metrics"][key], key, p.mode, p.alias)
    return {**dataclasses.asdict(d), "candidate_trial": cand["number"]}


# ----------------------------------------------------------------------------- CLI
def cmd_tune(args) -> int:
    """``tdml tune --study studies/x.yaml [--n-trials N] [--storage URL] [--n-jobs K] [--set k=v]``."""
    from tdml.config import load_yaml, parse_overrides

    if not args.study:
        raise ConfigError("--study is required: a study spec such as studies/timedistill_synthetic.yaml")
    overrides = deep_merge(load_yaml(args.config) if args.config else {}, parse_overrides(args.set or []))
    if args.no_progress:
        overrides = deep_merge(overrides, {"base": {"train": {"progress": False}}})
    try:
        spec = load_spec(args.study, overrides)
        KINDS.get(spec.kind)(spec).validate()
        if (args.n_jobs or 1) < 1:
            raise ConfigError(f"--n-jobs must be >= 1, got {args.n_jobs}")
    except TdmlError:  # before any storage or trial: a FAILED study run that says why
        with tracking.start_run("tdml-tuning", "study-invalid", "study", {"tdml.study_file": str(args.study)}):
            raise
    r = tune(spec, args.n_trials or None, args.storage or None, args.n_jobs or 1)
    print(f"study {r.study_name} ({r.storage}): trials {r.n_trials}; parent run {r.parent_run_id}")
    for b in r.best[:5]:
        print(f"  best trial {b['number']}: {b['values']} params {b['params']} run {b['mlflow_run_id']}")
    for f in r.finals:
        print(f"  final (trial {f['number']}): {f['metrics']} -> models:/{f['registered_name']}/{f['version']}")
    if r.promotion:
        print(f"  promotion: {'PROMOTED' if r.promotion['promoted'] else 'kept current'} - {r.promotion['reason']}")
    return 0

