"""What a study searches over: ``StudyKind`` and the ``KINDS`` registry (spec-facing).

A kind turns one trial's parameters into one run inside the active MLflow run. ``distill``
(``tdml.tuning.distill_kind``) is the default; kinds defined elsewhere register with
``@KINDS.register(name)`` from their own module, which ``KINDS`` names as a plug-in
(``tdml.condensation.study``), so adding a kind touches no module of this package but that list.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Any

from tdml.config import set_dotted
from tdml.errors import ConfigError, TdmlError
from tdml.registry import Registry
from tdml.studies import StudySpec

if TYPE_CHECKING:
    from tdml.runs.common import RunSummary


class StudyKind:
    """What a study searches over. Subclasses register with ``@KINDS.register(name)``."""

    seed_path = "train.seed"  # the run config's seed, set per child run of a multi-seed trial

    def __init__(self, spec: StudySpec):
        self.spec = spec

    def validate(self) -> None:
        """Static checks of the spec (keys, ranges, objective names); before anything runs."""

    def prepare(self) -> None:
        """Resolve external resources (e.g. the teacher) inside the study run, before trials."""

    def search_space(self, trial) -> dict[str, Any]:
        """Raw config overrides for one trial: one suggestion per dotted path (its param name)."""
        raw: dict[str, Any] = {}
        for path, dist in self.spec.search_space.items():
            set_dotted(raw, path, dist.suggest(trial, path))
        return raw

    def monitor(self) -> str | None:
        """The per-epoch validation metric reported to the pruner (a key of val_metrics)."""
        m = self.spec.objectives[0].metric
        return m[len("val_"):] if m.startswith("val_") else None

    def run(self, overrides: dict[str, Any], callbacks, final: bool) -> RunSummary:
        """One run inside the active MLflow run: validation-only unless ``final``."""
        raise NotImplementedError


# Kinds defined in other packages register themselves when their module is imported; they are
# named here, not imported, so tuning does not depend on them (no import cycle).
KINDS: Registry[type[StudyKind]] = Registry("study kind", plugins=("tdml.condensation.study",))


def check_space(spec: StudySpec, root: type, sections: dict[str, type], resolve) -> None:
    """Every searched path names a field of the run config ``root`` (a ``dict`` field is walked
    through ``sections[name]``, e.g. ``loss`` -> the method's ``Config``), and every corner of its
    range resolves: ``resolve(overrides)`` builds the trial's run config and raises on bad values."""
    space = spec.search_space
    for path in [*space.sections, *(p for p, _ in space.items())]:
        _walk(root, sections, path)
    for path, dist in space.items():
        for v in dist.corners():
            overrides: dict[str, Any] = {}
            set_dotted(overrides, path, v)
            try:
                resolve(overrides)
            except TdmlError as e:
                raise ConfigError(f"search_space.{path}: bad range, value {v!r} is invalid: {e}") from None


def _walk(cls: type, sections: dict[str, type], path: str) -> None:
    parts = path.split(".")
    for i, name in enumerate(parts):
        hints = typing.get_type_hints(cls)
        fields = [f.name for f in dataclasses.fields(cls) if f.init]
        if name not in fields:
            where = ".".join(parts[:i])
            what = f"search_space.{where}: unknown field" if where else "search_space: unknown component"
            raise ConfigError(f"{what} {name!r}; valid: {', '.join(sorted(fields))}")
        if i == len(parts) - 1:
            return
        cls = sections.get(".".join(parts[:i + 1])) or hints[name]
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"search_space.{path}: {'.'.join(parts[:i + 1])!r} is a value, not a section")
