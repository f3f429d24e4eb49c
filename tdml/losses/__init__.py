"""Distillation losses. Each is an nn.Module called as ``loss(student, teacher, target)``
with ``ModelOutput`` arguments, returning ``{term_name: scalar tensor}``; importing this
package registers every loss in ``LOSSES``."""

from tdml.losses.base import LOSSES, ModelOutput  # noqa: F401
from tdml.losses import dt2w, hints, kd, memkd, none, timedistill  # noqa: F401  (registration)
