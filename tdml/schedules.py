"""Learning-rate schedules: each epoch's lr from the initial ``train.lr`` and, for ``plateau``,
from what validation has said so far.

* ``type1`` -- TimeDistill's reference launchers: lr for epochs 1-2, then halved every epoch.
* ``cosine`` -- cosine from lr to 0 over ``train.epochs``.
* ``constant``.
* ``step`` -- lr x ``lr_factor`` every ``lr_step`` epochs.
* ``plateau`` -- torch's ReduceLROnPlateau rule (same ``patience`` meaning, threshold 0) on the
  monitored validation metric (the loss: MSE for forecasting, cross-entropy for
  classification): lr x ``lr_factor`` once the metric has gone more than ``lr_patience``
  epochs without improving, never below ``min_lr``. MemKD's paper gives
  "initial" rates (0.01 teacher, 0.1 student) without the decay; ``plateau`` and ``step`` are
  the two readings offered (issue 23).
"""

from __future__ import annotations

import math

from tdml.config import TrainConfig
from tdml.registry import Registry


class Schedule:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def lr(self, epoch: int) -> float:
        raise NotImplementedError

    def observe(self, improved: bool) -> None:
        """After each epoch's validation: whether the monitored metric improved on its best."""


SCHEDULES: Registry[type[Schedule]] = Registry("lr schedule")


@SCHEDULES.register("constant")
class Constant(Schedule):
    def lr(self, epoch: int) -> float:
        return self.cfg.lr


@SCHEDULES.register("type1")
class Type1(Schedule):
    def lr(self, epoch: int) -> float:
        return self.cfg.lr * 0.5 ** max(0, epoch - 1)


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    def lr(self, epoch: int) -> float:
        return 0.5 * self.cfg.lr * (1 + math.cos(math.pi * epoch / self.cfg.epochs))


@SCHEDULES.register("step")
class Step(Schedule):
    def lr(self, epoch: int) -> float:
        return max(self.cfg.lr * self.cfg.lr_factor ** (epoch // self.cfg.lr_step), self.cfg.min_lr)


@SCHEDULES.register("plateau")
class Plateau(Schedule):
    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.current, self.bad = cfg.lr, 0

    def lr(self, epoch: int) -> float:
        return self.current

    def observe(self, improved: bool) -> None:
        self.bad = 0 if improved else self.bad + 1
        if self.bad > self.cfg.lr_patience:
            self.current, self.bad = max(self.current * self.cfg.lr_factor, self.cfg.min_lr), 0


def schedule(cfg: TrainConfig) -> Schedule:
    return SCHEDULES.get(cfg.lr_schedule)(cfg)
