"""``none``: no distillation term -- the student trained on the ground truth alone
("Base" / "MLP without distillation"), under the same trainer and schedule as the
distilled runs so the comparison isolates the distillation terms."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tdml.distill.base import LOSSES


@dataclass
class NoDistillConfig:
    pass


@LOSSES.register("none")
class NoDistill(nn.Module):
    Config = NoDistillConfig

    @classmethod
    def from_models(cls, cfg, student, teacher) -> "NoDistill":
        return cls()

    def teacher_features(self) -> tuple[str, ...]:
        return ()

    def weights(self) -> dict[str, float]:
        return {}

    def forward(self, student, teacher, target=None):
        return {}
