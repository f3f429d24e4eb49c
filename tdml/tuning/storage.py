"""Where a study lives: the Optuna RDB storage (created or resumed), its artifact folder,
the sampler and pruner a spec names, and the retry of trials whose worker died."""

from __future__ import annotations

import logging
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from tdml import tracking
from tdml.errors import ConfigError
from tdml.studies import StudySpec

log = logging.getLogger(__name__)


@contextmanager
def _experimental_ok():
    """Silence Optuna's ExperimentalWarning for the heartbeat API we rely on (scoped, not global)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


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
    """Heartbeat-stale trial (its worker died): close its MLflow run and the dead worker's study
    run as KILLED, then retry it through Optuna's ``RetryHeartbeatStaleTrialCallback`` (same
    params, WAITING). A stale trial means its process stopped beating, so nothing else writes to
    that study run; if the process was only frozen and resumes, it ends the run itself again."""

    def __init__(self, max_retry: int):
        with _experimental_ok():
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        why = f"worker died: Optuna trial {trial.number} of study {study.study_name!r} stopped beating"
        for key, reason in (("mlflow_run_id", f"{why}; it is retried"),
                            ("mlflow_parent_run_id", f"{why} (this worker's study run)")):
            if key == "mlflow_parent_run_id" and trial.user_attrs.get("mlflow_parent_shared"):
                continue  # an n_jobs worker's: the study run is its caller's, which is alive
            run_id = trial.user_attrs.get(key)
            if not run_id:
                continue
            try:
                tracking.mark_run_killed(run_id, reason)
            except Exception as e:  # noqa: BLE001 - the retry must happen even if MLflow is elsewhere
                log.warning("could not close MLflow run %s of stale trial %d: %s", run_id, trial.number, e)
        self.retry(study, trial)


def _sampler(spec: StudySpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler; worker ``i`` of an ``n_jobs`` search draws from ``seed + i``."""
    s, seed = spec.sampler, spec.sampler.seed + worker
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if s.name == "grid":  # every combination once; the study stops itself when none is left
        return optuna.samplers.GridSampler({p: list(d.choices) for p, d in spec.search_space.items()}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials, multivariate=True)


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
    about two connections (trial writes + the heartbeat thread)."""
    if url.startswith("sqlite"):
        return {}
    return {"pool_size": int(os.environ.get("TDML_OPTUNA_POOL_SIZE", 2)),
            "max_overflow": int(os.environ.get("TDML_OPTUNA_MAX_OVERFLOW", 2))}


def _storage_error(url: str, e: BaseException) -> ConfigError:
    first = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    return ConfigError(f"cannot open the Optuna storage {redact(url)}: {type(e).__name__}: {first}. Use a "
                       f"SQLAlchemy URL such as sqlite:///optuna.db or postgresql+psycopg://user:pw@host:5432/db "
                       f"(pip install 'tdml[postgres]' for the driver) and check the database is reachable")


def create_or_load_study(spec: StudySpec, url: str | None = None, worker: int = 0) -> optuna.Study:
    """Create the storage and the study once (or load it: re-running resumes the study);
    ``worker``: this process's index among an ``n_jobs`` search's workers (its sampler seed)."""
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
            study = optuna.create_study(storage=storage, study_name=spec.name, sampler=_sampler(spec, worker),
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
