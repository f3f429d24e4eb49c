"""Optuna studies over distillation settings, tracked in MLflow.

One ``tune`` call = one MLflow parent run (role ``study``) and one child run per trial
(role ``trial``, nested through ``parent_run_id`` so it is correct from worker processes).
Each trial trains on train, is checkpointed and scored on validation (the test split is
never read during the search), reports its monitor metric every epoch to the pruner, and
records its MLflow run id on the Optuna trial (user attr ``mlflow_run_id``). After the
search the best trial(s) are re-run once with ``final_split=test`` in a ``final`` child run
that registers a new version without moving any alias; the promotion gate then moves the
alias only if the candidate beats the current holder on validation.

Kinds of study are registered in ``KINDS``: a kind turns trial parameters into one run.
``distill`` (TimeDistill and every other loss in ``tdml.losses``) is the default.

Modules: ``kinds`` (StudyKind, KINDS), ``distill_kind``, ``storage`` (storage, sampler,
pruner, stale-trial retry), ``objective`` (trial runs, pruning), ``search`` (``tune``,
summary, plots), ``finals`` (test re-runs, promotion). ``tdml tune`` is ``tdml.api.tune``.
"""

from tdml.tuning.kinds import KINDS, StudyKind, check_space
from tdml.tuning.distill_kind import RUN_METRICS, DistillKind  # registers the default kind
from tdml.tuning.storage import (RetryStaleTrial, artifact_dir, create_or_load_study, pool_kwargs, redact,
                                 storage_url)
from tdml.tuning.objective import PruningReporter, make_objective, objective_value
from tdml.tuning.finals import final_run, promote
from tdml.tuning.search import TuneResult, tune

__all__ = ["KINDS", "StudyKind", "check_space", "RUN_METRICS", "DistillKind", "RetryStaleTrial",
           "artifact_dir", "create_or_load_study", "pool_kwargs", "redact", "storage_url", "PruningReporter",
           "make_objective", "objective_value", "final_run", "promote", "TuneResult", "tune"]
