"""Teacher selection: train several seeds, keep the best on validation (docs/methods.md §2.7).

MemKD's teacher is "best of five by validation AUC-PRC". ``select_teacher`` trains one
teacher run per seed (each registered as a new version *without* moving any alias), then
points the alias at the version whose validation score is best. The score is the task
metric of the restored checkpoint on the validation split (``best_val_<metric>``); the
test split is never consulted. Ties (small validation splits saturate, e.g. AUC-PRC 1.0 for
every seed) go to the lower validation cross-entropy (``best_val_ce``) where the runs log it,
then to the earlier seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Sequence, get_args

from tdml import tracking
from tdml.config import DEFAULT_EXPERIMENT, set_dotted
from tdml.errors import ConfigError, TdmlError
from tdml.runs.common import RunSummary
from tdml.runs.teacher import train_teacher_in_run
from tdml.resolve import resolve_teacher
from tdml.tasks import Mode, better


@dataclass
class Selection:
    uri: str  # models:/<name>@<alias>
    name: str
    alias: str
    best_seed: int
    best_version: str
    metric: str  # e.g. "best_val_auc_prc"
    scores: dict[int, float]  # seed -> validation score
    runs: dict[int, RunSummary] = field(default_factory=dict)


def select_teacher(raw: dict[str, Any], seeds: Sequence[int], metric: str = "auc_prc", mode: Mode = "max",
                   alias: str = "champion", experiment: str | None = None) -> Selection:
    """Train a teacher per seed from the raw teacher config ``raw`` and alias the best.

    ``raw`` is what ``tdml.resolve.resolve_teacher`` takes (its ``train.seed`` and
    ``tracking.alias`` are set here). Each run is tagged ``tdml.selection_seed``; the
    chosen run gets ``tdml.selected=true`` and its version tags record the rule.
    """
    if not seeds:
        raise ConfigError("select_teacher needs at least one seed")
    if mode not in get_args(Mode):
        raise ConfigError(f"mode must be 'max' or 'min', got {mode!r}")
    key = f"best_val_{metric}"
    experiment = experiment or raw.get("tracking", {}).get("experiment", DEFAULT_EXPERIMENT)
    runs: dict[int, RunSummary] = {}
    for seed in seeds:
        r = copy.deepcopy(raw)
        set_dotted(r, "train.seed", int(seed))
        set_dotted(r, "tracking.alias", "")  # register, but move no alias yet
        set_dotted(r, "tracking.register", True)
        with tracking.start_run(experiment, f"teacher-{r.get('model', '?')}-seed{seed}", "teacher",
                                tags={"tdml.selection_seed": str(seed)}):
            s = train_teacher_in_run(resolve_teacher(r))
        if key not in s.metrics:
            raise TdmlError(f"teacher run {s.run_id} logged no {key!r}; its metrics: {', '.join(sorted(s.metrics))}")
        runs[int(seed)] = s
    scores = {seed: float(s.metrics[key]) for seed, s in runs.items()}
    ce = {seed: float(s.metrics["best_val_ce"]) for seed, s in runs.items() if "best_val_ce" in s.metrics}
    best = best_key(scores, mode, ce if len(ce) == len(runs) else None)
    s = runs[best]
    name = s.registered_name
    tracking.set_alias(name, alias, s.version)
    tracking.set_version_tags(name, s.version, {"tdml.selected_by": f"{mode} {key} over seeds "
                                                f"{','.join(map(str, scores))}", "tdml.selection_seed": best})
    tracking.set_run_tags(s.run_id, {"tdml.selected": "true"})
    return Selection(f"models:/{name}@{alias}", name, alias, best, s.version, key, scores, runs)


def best_key(scores: dict[int, float], mode: Mode, tiebreak: dict[int, float] | None = None) -> int:
    """The key (seed, trial number) with the best finite score; NaN scores never win. Tied scores
    go to the lower ``tiebreak`` value (validation CE) if given, then to the first key."""
    finite = {k: v for k, v in scores.items() if v == v}
    if not finite:
        raise TdmlError(f"every teacher seed scored NaN on validation: {scores}")
    pick = next(iter(finite))
    for seed, score in finite.items():
        if better(score, finite[pick], mode) or (
                tiebreak is not None and score == finite[pick] and tiebreak[seed] < tiebreak[pick]):
            pick = seed
    return pick
