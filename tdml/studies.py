"""Study specs (``studies/*.yaml``): typed, validated before any trial runs.

A spec names *what* to search (``search_space``: dotted paths of the kind's run config, such
as ``loss.alpha``, ``train.lr``, ``student``, ``ddtime.lam``), *how* (``sampler``, ``pruner``, ``n_trials``),
*for what* (``objectives``) and *what happens after* (``promotion``). ``kind`` selects a
registered objective builder (``tdml.tuning.KINDS``; default ``distill``), so another kind
of study (MemKD classification, dataset condensation) plugs in without touching this file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tdml.config import coerce_dataclass, deep_merge, load_yaml, require
from tdml.errors import ConfigError
from tdml.tasks import Mode


@dataclass
class Distribution:
    """One searched value: ``float`` (optionally ``log``/``step``), ``int`` or ``categorical``."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def validate(self):
        if self.type == "categorical":
            require(bool(self.choices), "a categorical distribution needs a non-empty `choices` list")
            require(self.low is None and self.high is None and not self.log,
                    "a categorical distribution takes only `choices` (no low/high/log)")
            return
        require(self.choices is None, f"a {self.type} distribution takes low/high, not `choices`")
        require(self.low is not None and self.high is not None,
                f"a {self.type} distribution needs `low` and `high`")
        require(math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high,
                f"bad range: low {self.low} must be <= high {self.high}")
        require(not self.log or self.low > 0, f"bad range: log scale needs low > 0, got {self.low}")
        require(not (self.log and self.step), "`log` and `step` cannot be combined")
        if self.type == "int":
            require(float(self.low).is_integer() and float(self.high).is_integer(),
                    f"an int distribution needs integer bounds, got {self.low}..{self.high}")

    def suggest(self, trial, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """The extreme values, to check them against the component's own config validation."""
        if self.type == "categorical":
            return list(self.choices)
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


DIST_KEYS = frozenset(f.name for f in dataclasses.fields(Distribution))


@dataclass
class SearchSpace:
    """Dotted config path (``loss.alpha``, ``train.lr``, ``ddtime.lam``, ``student``) ->
    ``Distribution``; the path is also the Optuna parameter name. The YAML may nest sections
    (``loss: {alpha: {...}}``) or write paths (``loss.alpha: {...}``). Whether a path exists
    is the study kind's question: it checks every path against its resolved run config."""

    params: dict[str, Distribution] = field(default_factory=dict)
    sections: tuple[str, ...] = ()  # the top-level names as written (an empty section included)

    def items(self):
        return self.params.items()


SamplerName = Literal["tpe", "random", "nsga2", "grid"]
PrunerName = Literal["median", "hyperband", "none"]


@dataclass
class SamplerSpec:
    name: SamplerName = "tpe"
    seed: int = 0
    n_startup_trials: int = 5  # tpe only: random trials before the model kicks in

    def validate(self):
        require(self.n_startup_trials >= 0, "sampler.n_startup_trials must be >= 0")


@dataclass
class PrunerSpec:
    name: PrunerName = "median"
    n_startup_trials: int = 2  # median: trials completed before pruning starts
    n_warmup_steps: int = 0  # median: epochs before a trial can be pruned
    min_resource: int = 1  # hyperband
    reduction_factor: int = 3  # hyperband

    def validate(self):
        require(self.n_startup_trials >= 0 and self.n_warmup_steps >= 0 and self.min_resource >= 1
                and self.reduction_factor >= 2, "pruner: counts must be >= 0, min_resource >= 1, "
                "reduction_factor >= 2")


@dataclass
class ObjectiveSpec:
    metric: str = "val_mse"  # a metric of the trial run (validation metrics are val_*)
    direction: Literal["minimize", "maximize"] = "minimize"  # Optuna's words for a study direction

    @property
    def mode(self) -> Mode:
        """The direction in the vocabulary of every other comparison (``tdml.tasks.better``)."""
        return "min" if self.direction == "minimize" else "max"


@dataclass
class PromotionSpec:
    """After the search: the best student is registered; ``alias`` moves only if it is better."""

    enabled: bool = True
    alias: str = "champion"
    metric: str = "mse"  # validation metric compared (logged as best_val_<metric>)
    mode: Mode = "min"

    def validate(self):
        require(bool(self.alias), "promotion.alias must not be empty")


@dataclass
class StorageSpec:
    url: str = ""  # "" = sqlite:///optuna.db in the working directory (or $TDML_OPTUNA_STORAGE)
    artifact_dir: str = ""  # "" = next to a SQLite file (<db>-artifacts), else ./optuna-artifacts
    heartbeat_interval: int = 10  # seconds; a trial whose worker stops beating is stale ...
    grace_period: int = 30  # ... after this long, and is retried (RetryHeartbeatStaleTrialCallback)
    max_retry: int = 2

    def validate(self):
        require(self.heartbeat_interval >= 1 and self.grace_period > self.heartbeat_interval,
                "storage: heartbeat_interval must be >= 1 and grace_period > heartbeat_interval")
        require(self.max_retry >= 0, "storage.max_retry must be >= 0")


@dataclass
class StudySpec:
    name: str = ""
    kind: str = "distill"  # a key of tdml.tuning.KINDS
    experiment: str = "tdml-tuning"
    # Teacher: a models:/ URI; with `train_teacher` (a train-teacher config), a missing
    # name/alias is trained and registered once, before the search starts.
    teacher: str = ""
    train_teacher: dict | None = None
    base: dict = field(default_factory=dict)  # fixed DistillRunConfig fields (student, method, train, ...)
    data: dict = field(default_factory=dict)  # data settings (default: the teacher's own)
    search_space: SearchSpace = field(default_factory=SearchSpace)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    n_trials: int = 20
    timeout_s: float = 0.0  # 0 = no limit
    objectives: list[ObjectiveSpec] = field(default_factory=lambda: [ObjectiveSpec()])
    plots: bool = True  # optuna plots (plotly HTML) on the study run after the search
    finalize: bool = True  # after the search: test + register the best, then the promotion gate
    n_final: int = 1  # how many best trials (Pareto-optimal ones for multi-objective) to test
    # >1 seed: each trial runs once per seed (a child run each) and its value is their mean, so
    # a choice is not one seed's noise (issue 23); [] = one run at the base config's seed
    seeds: list[int] = field(default_factory=list)
    promotion: PromotionSpec = field(default_factory=PromotionSpec)
    storage: StorageSpec = field(default_factory=StorageSpec)

    def validate(self):
        require(bool(self.name), "study `name` is required (it names the Optuna study and tags its runs)")
        require(self.n_trials >= 1, f"n_trials must be >= 1, got {self.n_trials}")
        require(self.n_final >= 1, f"n_final must be >= 1, got {self.n_final}")
        require(bool(self.objectives), "at least one objective is required")
        names = [o.metric for o in self.objectives]
        require(len(set(names)) == len(names), f"objectives repeat a metric: {names}")
        require(len(self.objectives) == 1 or self.pruner.name == "none",
                "Optuna cannot prune multi-objective studies; set `pruner: {name: none}`")
        require(len(set(self.seeds)) == len(self.seeds), f"seeds repeat a value: {self.seeds}")
        if self.sampler.name == "grid":
            ranges = [p for p, d in self.search_space.items() if d.type != "categorical"]
            require(bool(self.search_space.params), "sampler grid needs a search_space to enumerate")
            require(not ranges, f"sampler grid enumerates listed values: give {', '.join(ranges)} as "
                                f"`{{type: categorical, choices: [...]}}` instead of a range")

    def grid_size(self) -> int:
        return math.prod(len(d.choices or ()) for _, d in self.search_space.items())

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> StudySpec:
    """Parse a study YAML (+ dotted overrides) into a StudySpec; the kind validates the rest."""
    raw = deep_merge(load_yaml(path), overrides or {})
    return spec_from_dict(raw, str(path))


def spec_from_dict(raw: dict[str, Any], where: str = "study") -> StudySpec:
    space = raw.get("search_space") or {}
    if not isinstance(space, dict):
        raise ConfigError(f"{where}: search_space must be a mapping of config paths to distributions")
    raw = {**raw, "search_space": parse_space(space, f"{where}.search_space")}
    return coerce_dataclass(StudySpec, raw, where)


def _is_distribution(v: Any) -> bool:
    """A leaf of the nested YAML: a mapping of Distribution fields (not a config section)."""
    return isinstance(v, dict) and bool(v) and set(v) <= DIST_KEYS and not any(isinstance(x, dict) for x in v.values())


def parse_space(space: dict[str, Any], where: str) -> SearchSpace:
    """Nested sections and dotted keys -> {dotted path: Distribution}."""
    out: dict[str, Distribution] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, v in node.items():
            path = f"{prefix}{key}"
            if _is_distribution(v):
                out[path] = coerce_dataclass(Distribution, v, f"{where}.{path}")
            elif isinstance(v, dict):
                walk(v, path + ".")
            else:
                raise ConfigError(f"{where}.{path}: expected a distribution (type/low/high/log/step/choices) "
                                  f"or a section of them, got {v!r}")

    walk(space, "")
    return SearchSpace(out, tuple(k.split(".")[0] for k in space))
