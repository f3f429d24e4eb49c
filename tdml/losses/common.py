"""Shared pieces of the classification distillation losses (docs/methods.md §2.2).

Every loss here has a typed ``Config`` whose ``weight`` is λd, the weight of the whole
loss against the caller's λc · CE, plus relative weights of its own sub-terms; ``weights()``
gives the product per term for ``weighted_sum``. Sub-terms with weight 0 are not computed.
Teacher tensors are detached inside the losses, so no gradient can reach the teacher even
if the caller forgot ``no_grad``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from tdml.config import require
from tdml.losses.base import DistillationLoss, ModelOutput
from tdml.errors import IncompatibleTeacherError


@dataclass
class LossConfig:
    weight: float = 1.0  # λd: scales every term of this loss

    def validate(self):
        require(self.weight >= 0, f"weight (λd) must be >= 0, got {self.weight}")


class DistillLoss(DistillationLoss):
    """Base of the classification losses: one constructor, so a pipeline builds any by name.

    ``student_feature`` / ``teacher_feature`` name the ``features()`` entries (a hidden-state
    sequence [B, L, d]); ``d_student`` / ``d_teacher`` are their widths, needed by losses
    with a learned projection.
    """

    Config: ClassVar[type] = LossConfig

    def __init__(self, cfg: Any = None, student_feature: str = "sequence", teacher_feature: str = "sequence",
                 d_student: int = 0, d_teacher: int = 0):
        super().__init__(cfg)
        self.student_feature, self.teacher_feature = student_feature, teacher_feature
        self.d_student, self.d_teacher = d_student, d_teacher

    @classmethod
    def from_models(cls, cfg: Any, student, teacher) -> "DistillLoss":
        """Build from the declared shapes of both models' distill features."""
        ds = student.feature_shapes()[student.distill_feature][-1]
        dt = teacher.feature_shapes()[teacher.distill_feature][-1]
        return cls(cfg, student.distill_feature, teacher.distill_feature, ds, dt)

    def teacher_features(self) -> tuple[str, ...]:
        """The teacher ``features()`` entries the terms read (what a teacher cache keeps)."""
        return (self.teacher_feature,)

    def term_weights(self) -> dict[str, float]:
        """Relative weight of each sub-term (before λd)."""
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        return {k: self.cfg.weight * w for k, w in self.term_weights().items()}

    def active(self, term: str) -> bool:
        return self.term_weights()[term] != 0  # a sub-term, whatever λd

    def sequences(self, student: ModelOutput, teacher: ModelOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """(student [B, L, ds], detached teacher [B, L, dt]); same batch and length required."""
        hs = _feature(student, self.student_feature, "student")
        ht = _feature(teacher, self.teacher_feature, "teacher").detach()
        if hs.dim() != 3 or ht.dim() != 3 or hs.shape[:2] != ht.shape[:2]:
            raise IncompatibleTeacherError(
                f"{type(self).__name__} compares hidden-state sequences [B, L, d] of equal B and L; got "
                f"student {tuple(hs.shape)} and teacher {tuple(ht.shape)} -- train the teacher on the same "
                f"sequence length as the student")
        return hs, ht


def _feature(out: ModelOutput, name: str, who: str) -> torch.Tensor:
    if name not in out.features:
        raise IncompatibleTeacherError(f"the {who} has no feature {name!r}; its features are: "
                                       f"{', '.join(out.features) or 'none'}")
    return out.features[name]


def learned_projection(d_in: int, d_out: int, who: str, always: bool = False) -> nn.Module:
    """Linear(d_in -> d_out) applied per time step; the identity when widths agree unless ``always``."""
    if d_in <= 0 or d_out <= 0:
        raise ValueError(f"{who} needs the feature widths: pass d_student and d_teacher "
                         f"(from the models' feature_shapes()), got {d_in} and {d_out}")
    return nn.Linear(d_in, d_out) if always or d_in != d_out else nn.Identity()
