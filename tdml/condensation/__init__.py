"""Dataset distillation for forecasting (docs/methods.md §3): expert trajectories, trajectory
matching on a learnable synthetic series, CondTSF and DDTime plug-ins, evaluation on
validation-selected synthetic sets. See docs/condense.md."""

from tdml.condensation.config import CondenseRunConfig  # noqa: F401
from tdml.condensation.methods import BASES, NAMED, PLUGINS, method_defaults, parse_method  # noqa: F401
