"""What a study searches over: ``StudyKind`` and the ``KINDS`` registry (spec-facing).

A kind turns one trial's parameters into one run inside the active MLflow run. ``distill``
(``tdml.tuning.distill_kind``) is the default; kinds defined elsewhere register with
``@KINDS.register(name)`` from their own module, which ``KINDS`` names as a plug-in
(``tdml.condense.study``), so adding a kind touches no module of this package but that list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tdml.config import set_dotted
from tdml.registry import Registry
from tdml.studies import Distribution, StudySpec

if TYPE_CHECKING:
    from tdml.pipelines import RunSummary


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

    def run(self, overrides: dict[str, Any], callbacks, final: bool) -> RunSummary:
        """One run inside the active MLflow run: validation-only unless ``final``."""
        raise NotImplementedError


# Kinds defined in other packages register themselves when their module is imported; they are
# named here, not imported, so tuning does not depend on them (no import cycle).
KINDS: Registry[type[StudyKind]] = Registry("study kind", plugins=("tdml.condense.study",))


def suggest_component(trial, component: str, dists: dict[str, Distribution]) -> dict[str, Any]:
    """``{dotted config key: value}`` for one component; Optuna param names are those keys."""
    keys = {name: f"{component}.{name}" if name else component for name in dists}
    return {keys[name]: dist.suggest(trial, keys[name]) for name, dist in dists.items()}
