"""Typed configuration: dataclasses filled from YAML (safe_load) and dotted overrides.

Unknown keys and values of the wrong type fail with a message naming the key, the
expected type and the valid keys. No config value ever runs code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from tdml.errors import ConfigError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("", "none", "null") and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return coerce_dataclass(tp, value, where)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def coerce_dataclass(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, type-checking every field."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for k, v in values.items():
        f = fields[k]
        # A nested dataclass given partially starts from this field's own default
        # (e.g. the student's TrainConfig(lr=0.01)), not from the nested class's defaults.
        if isinstance(v, dict) and dataclasses.is_dataclass(hints[k]) and f.default_factory is not dataclasses.MISSING:
            v = {**dataclasses.asdict(f.default_factory()), **v}
        kwargs[k] = _coerce(v, hints[k], f"{where}.{k}")
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where}: {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; used to log configs as MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override {dotted!r}: {p!r} is not a section")
    d[parts[-1]] = value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['train.epochs=3', 'loss.alpha=0.5'] -> nested dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        set_dotted(out, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must contain a mapping at the top level")
    return data


def require(cond: bool, message: str) -> None:
    """Config validation helper: raise ConfigError(message) when cond is false."""
    if not cond:
        raise ConfigError(message)


# --------------------------------------------------------------------------- run configs
# Defaults follow docs/methods.md; entry points and YAML files override them.
from dataclasses import dataclass, field  # noqa: E402


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"  # catalog name, 'synthetic', or a data_path's label
    data_path: str | None = None  # any local Time-Series-Library CSV
    seq_len: int = 0  # 0 = the dataset kind's default (forecasting 96, UCR resample length 100)
    pred_len: int = 0  # 0 = 24 for forecasting; unused for classification
    batch_size: int = 32
    split: str | None = None  # override the catalog's split rule (tdml.data.splits.SPLITS)
    duplicates: str = "keep"  # rows repeating a timestamp: keep (benchmark convention) | drop

    @property
    def label(self) -> str:
        """The dataset's name as runs, registered names and the defaults table see it: the
        catalog name, or a CSV's file stem when only ``data_path`` is given."""
        if self.data_path and self.dataset == "synthetic":  # an in-memory frame (tdml.data.frames): "dataframe"
            return "dataframe" if self.data_path.startswith("frame:") else Path(self.data_path).expanduser().stem.lower()
        return self.dataset

    def validate(self):
        require(self.seq_len == 0 or self.seq_len >= 2, f"seq_len must be >= 2 (or 0 for the default), got {self.seq_len}")
        require(self.pred_len >= 0, f"pred_len must be >= 1 (or 0 for the default), got {self.pred_len}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.duplicates in ("keep", "drop"),
                f"data.duplicates must be 'keep' (the benchmark convention) or 'drop', got {self.duplicates!r}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-4
    # tdml.schedules: type1 halves every epoch (TimeDistill's reference); step/plateau decay by
    # lr_factor every lr_step epochs / after more than lr_patience epochs without validation
    # improvement (torch's ReduceLROnPlateau patience)
    lr_schedule: Literal["type1", "cosine", "constant", "step", "plateau"] = "type1"
    lr_factor: float = 0.5
    lr_step: int = 50
    lr_patience: int = 10
    min_lr: float = 0.0
    patience: int = 3  # epochs without validation improvement before stopping
    weight_decay: float = 0.0
    seed: int = 2021
    device: str = "auto"  # 'auto' = cuda when available, else cpu
    progress: bool = True
    max_batches: int = 0  # >0 caps batches per epoch (smoke tests only)
    grad_clip: float = 0.0  # >0: clip the global gradient norm to this before each step
    # training forwards in bf16 / fp16 autocast (tdml.precision: what each device supports)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    optimizer: Literal["adam", "sgd"] = "adam"  # sgd: with ``momentum`` (CondTSF's published protocol)
    momentum: float = 0.0  # sgd only
    checkpoint: Literal["best", "last"] = "best"  # the kept weights: best validation epoch, or the last

    def validate(self):
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(self.momentum == 0 or self.optimizer == "sgd", "momentum is an sgd setting; set optimizer: sgd")
        require(0 < self.lr_factor < 1, f"lr_factor must be in (0, 1) (the lr decays), got {self.lr_factor}")
        require(self.lr_step >= 1, f"lr_step must be >= 1 epoch, got {self.lr_step}")
        require(self.lr_patience >= 1, f"lr_patience must be >= 1 epoch, got {self.lr_patience}")
        require(0 <= self.min_lr <= self.lr, f"min_lr must be in [0, lr = {self.lr}], got {self.min_lr}")
        require(self.lr_schedule != "plateau" or self.patience > self.lr_patience + 1,
                f"with lr_schedule=plateau, patience ({self.patience}) must exceed lr_patience + 1 "
                f"({self.lr_patience + 1}), or training stops before the lr ever decays")


# where a distill run keeps its frozen teacher's outputs (tdml.teacher_cache)
TeacherCacheMode = Literal["disk", "memory", "recompute"]
# how it stores them (handed out as float32 either way; tdml.cache_rows)
CacheDtype = Literal["float32", "float16", "bfloat16"]


DEFAULT_EXPERIMENT = "tdml"  # where runs land unless told otherwise (every entry point, the API)


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str = DEFAULT_EXPERIMENT
    alias: str = "champion"  # moves to a new version only through tdml.promotion.gate
    # if_better: only when better on validation than the holder (same data settings);
    # always: force; never: register as @challenger only
    promote: Literal["if_better", "always", "never"] = "if_better"
    register: bool = True
    # the model bundle (weights, input example, requirements: ~1-5 MB a run); off for the trials
    # of a study, whose final runs log and register the chosen model
    log_model: bool = True
    diagnostics: bool = True
    diagnostics_html: bool = True  # the plotly report (~5 MB); CSVs are written regardless
    latency_repeats: int = 20
    remeasure_teacher_latency: bool = False  # distill: else the teacher run's logged latency
    # 'test' for a final run; 'val' inside a search, where the test split must stay unread
    # (metrics and diagnostics are then computed on validation and named val_*).
    final_split: Literal["test", "val"] = "test"

    def validate(self):
        require(self.log_model or not self.register,
                "tracking.register needs tracking.log_model: a registered version is a logged model")
        # MLflow's alias rules, checked before training rather than after registering
        import re

        require(not self.alias or (re.fullmatch(r"[A-Za-z0-9_-]+", self.alias) is not None
                                   and re.fullmatch(r"[vV]\d+", self.alias) is None and self.alias.lower() != "latest"),
                f"alias {self.alias!r} is not a valid MLflow alias: use letters, digits, '_' and '-' "
                f"(not 'latest' or v<number>), e.g. champion")


@dataclass(frozen=True)
class TeacherRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: str = "itransformer"
    model_params: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass(frozen=True)
class DistillRunConfig:
    teacher: str = ""  # models:/<name>@<alias> (or /<version>)
    data: DataConfig = field(default_factory=DataConfig)
    student: str = "mlp"
    student_params: dict = field(default_factory=dict)
    method: str = "timedistill"  # a key of tdml.losses.base.LOSSES
    loss: dict = field(default_factory=dict)  # that loss's Config fields (its ``Config`` beside it in tdml.losses)
    target_weight: float = 1.0  # weight of the ground-truth loss
    # the frozen teacher's train-split outputs: computed once and shared through
    # $TDML_CACHE_DIR (disk, streamed: constant memory), once per run (memory), or every step (recompute).
    # Cached outputs equal recomputed ones to float32 rounding; at the full ETTh1 budget the two
    # give the same results in distribution (docs/results.md).
    teacher_cache: TeacherCacheMode = "disk"
    # float16 by default: half the disk and I/O of float32 with validation MSE within the seed
    # spread on ETTh1 and on Solar's shape (docs/results.md, "A compact cache"); it also keeps
    # Traffic's entry (24 GB in float32) under the default TDML_CACHE_MAX_GB. Outputs beyond
    # float16's range fail the run naming bfloat16 / float32, never silently as inf.
    teacher_cache_dtype: CacheDtype = "float16"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=0.01, lr_schedule="type1", patience=5))
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self):
        require(bool(self.teacher), "teacher is required: pass a registry URI such as "
                "models:/etth1-itransformer-L720-H96@champion")
        require(self.target_weight >= 0, f"target_weight must be >= 0, got {self.target_weight}")
