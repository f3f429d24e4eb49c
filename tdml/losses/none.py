"""``none``: no distillation term -- the student trained on the ground truth alone
("Base" / "MLP without distillation"), under the same trainer and schedule as the
distilled runs so the comparison isolates the distillation terms."""

from __future__ import annotations

from tdml.losses.base import LOSSES, DistillationLoss


@LOSSES.register("none")
class NoDistill(DistillationLoss):
    def weights(self) -> dict[str, float]:
        return {}

    def forward(self, student, teacher, target=None):
        return {}
