"""Per-dataset default hyper-parameters for every model, read from ``defaults.yaml``.

``default_params(model, dataset)`` = Params dataclass defaults <- ``default`` section <-
dataset section, returned as a full, validated mapping (what ``build_model`` takes).
``default_train(model, dataset)`` gives the matching training overrides (TrainConfig keys);
``default_loss(student, dataset, method, teacher)`` a student's distillation-loss defaults
(``loss: {<method>: {...}, <method>@<teacher model>: {...}}``; the teacher-specific entry wins).
The table is validated as a whole when loaded: an unknown model, method or key fails there.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any

from tdml.config import TrainConfig, coerce_dataclass, load_yaml
from tdml.errors import ConfigError
from tdml.models.base import MODELS

TABLE_PATH = Path(__file__).with_name("defaults.yaml")
FALLBACK = "default"
TRAIN_KEY = "train"
LOSS_KEY = "loss"


def validate_table(table: dict[str, Any], where: str = "model defaults") -> dict[str, dict[str, dict[str, Any]]]:
    """Check every section: known model names, Params / TrainConfig keys and types. Returns it lower-cased."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset, models in table.items():
        if not isinstance(models, dict):
            raise ConfigError(f"{where}: section {dataset!r} must map model names to settings")
        section = out.setdefault(str(dataset).lower(), {})
        for model, entry in models.items():
            entry = dict(entry or {})
            cls = MODELS.get(model)  # unknown model: RegistryError listing the valid ones
            train = entry.pop(TRAIN_KEY, {}) or {}
            losses = entry.pop(LOSS_KEY, {}) or {}
            coerce_dataclass(cls.Params, entry, where=f"{where}[{dataset}][{model}]")
            coerce_dataclass(TrainConfig, dict(train), where=f"{where}[{dataset}][{model}].{TRAIN_KEY}")
            _validate_losses(losses, f"{where}[{dataset}][{model}].{LOSS_KEY}")
            section[model.lower()] = {**entry, TRAIN_KEY: dict(train), LOSS_KEY: dict(losses)}
    return out


def _validate_losses(losses: dict[str, Any], where: str) -> None:
    from tdml.losses import LOSSES  # lazy: tdml.losses builds on tdml.models

    for key, values in losses.items():
        method, _, teacher = str(key).partition("@")
        cls = LOSSES.get(method)  # unknown method: RegistryError listing the valid ones
        if teacher:
            MODELS.get(teacher)
        coerce_dataclass(cls.Config, dict(values or {}), where=f"{where}[{key}]")


@lru_cache(maxsize=None)
def _packaged_table() -> dict[str, dict[str, dict[str, Any]]]:
    return validate_table(load_yaml(TABLE_PATH), where=str(TABLE_PATH.name))


def load_table(path: str | Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """The validated table: the packaged one, or the YAML file at ``path``."""
    return _packaged_table() if path is None else validate_table(load_yaml(path), where=str(path))


def _entries(model: str, dataset: str, table: dict | None):
    table = load_table() if table is None else table
    cls = MODELS.get(model)
    name = model.lower()
    return cls, [table.get(FALLBACK, {}).get(name, {}), table.get(dataset.lower(), {}).get(name, {})]


def default_params(model: str, dataset: str, table: dict | None = None) -> dict[str, Any]:
    """Full Params mapping for ``model`` on ``dataset`` (unknown datasets get the fallback)."""
    cls, entries = _entries(model, dataset, table)
    merged: dict[str, Any] = {}
    for entry in entries:
        merged.update({k: v for k, v in entry.items() if k not in (TRAIN_KEY, LOSS_KEY)})
    params = coerce_dataclass(cls.Params, merged, where=f"defaults for {model} on {dataset}")
    return dataclasses.asdict(params)


def default_train(model: str, dataset: str, table: dict | None = None) -> dict[str, Any]:
    """TrainConfig overrides for ``model`` on ``dataset`` (only the keys the table sets)."""
    _, entries = _entries(model, dataset, table)
    merged: dict[str, Any] = {}
    for entry in entries:
        merged.update(entry.get(TRAIN_KEY, {}))
    return merged


def default_loss(student: str, dataset: str, method: str, teacher: str = "",
                 table: dict | None = None) -> dict[str, Any]:
    """Loss Config overrides for ``student`` distilled with ``method`` from a ``teacher``
    model on ``dataset``: fallback < dataset, and in each ``<method>`` < ``<method>@<teacher>``."""
    _, entries = _entries(student, dataset, table)
    keys = [method.lower()] + ([f"{method.lower()}@{teacher.lower()}"] if teacher else [])
    merged: dict[str, Any] = {}
    for entry in entries:
        losses = {str(k).lower(): v for k, v in entry.get(LOSS_KEY, {}).items()}
        for key in keys:
            merged.update(losses.get(key) or {})
    return merged
