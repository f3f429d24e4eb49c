"""Typed configuration of a condensation run (docs/methods.md §3); every field reachable by --set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tdml.condensation.plugins import DDTimeConfig  # noqa: F401  (the plug-in terms' Config, beside them)
from tdml.condensation.synthetic import LAYOUTS
from tdml.config import DataConfig, TrackingConfig, require


@dataclass
class ExpertConfig:
    """Expert trajectories: N models trained on real windows, parameters saved every epoch."""

    model: str = "dlinear"
    model_params: dict = field(default_factory=dict)
    n_experts: int = 5
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    max_batches: int = 0  # >0 caps batches per epoch (tests only)
    # FTD: sharpness-aware updates (SAM radius rho); 0 = plain Adam experts
    sharpness: float = 0.0
    seed: int = 0
    optimizer: Literal["adam", "sgd"] = "adam"  # CondTSF's code: SGD, momentum 0.9
    momentum: float = 0.0
    stride: int = 1  # real training windows every `stride` rows (CondTSF's code: 12)

    def validate(self):
        require(self.n_experts >= 1, f"experts.n_experts must be >= 1, got {self.n_experts}")
        require(self.epochs >= 2, f"experts.epochs must be >= 2 (a trajectory needs a start and an end), "
                                  f"got {self.epochs}")
        require(self.lr > 0, f"experts.lr must be > 0, got {self.lr}")
        require(self.sharpness >= 0, f"experts.sharpness (FTD rho) must be >= 0, got {self.sharpness}")
        require(self.stride >= 1, f"experts.stride must be >= 1, got {self.stride}")


@dataclass
class MatchConfig:
    """MTT: K differentiable SGD steps from theta*_t, matched against theta*_{t+M}."""

    iterations: int = 400
    syn_steps: int = 20  # K
    expert_epochs: int = 2  # M
    max_start_epoch: int = 5  # t drawn from [0, max_start_epoch)
    # DATM: the start-epoch window widens linearly from datm_initial to max_start_epoch
    datm: bool = False
    datm_initial: int = 1
    series_lr: float = 0.01  # Adam lr of the synthetic series (the paper: 0.1; see docs/condense.md)
    inner_lr: float = 0.1  # student SGD lr (initial value when learnable); 0.01 left the student ~still (match ~0.95)
    learn_inner_lr: bool = True
    lr_lr: float = 1e-2  # Adam lr of the learnable inner lr, on log(lr): ~1 % per iteration at most
    stride: int = 4  # windows re-cut from the series every step with this stride
    # CondTSF's code (the published protocol): `updates` matching steps per iteration from the
    # same expert and start; inner-loop targets soft_label * y + (1 - soft_label) f(theta*_{t+M}; x);
    # the matching loss divided by its own (detached) value; DATM's window sliding (not widening)
    updates: int = 1
    soft_label: float = 1.0
    normalize: bool = False
    datm_mode: Literal["widen", "slide"] = "widen"  # widen: [0, datm_initial) grows to max_start_epoch; slide: CondTSF's code

    def validate(self):
        require(self.iterations >= 0, f"match.iterations must be >= 0, got {self.iterations}")
        require(self.syn_steps >= 0, f"match.syn_steps must be >= 0, got {self.syn_steps}")
        require(self.expert_epochs >= 1, f"match.expert_epochs must be >= 1, got {self.expert_epochs}")
        require(self.max_start_epoch >= 1, f"match.max_start_epoch must be >= 1, got {self.max_start_epoch}")
        require(self.series_lr > 0 and self.inner_lr >= 0 and self.lr_lr >= 0,
                "match.series_lr must be > 0, match.inner_lr and match.lr_lr >= 0")
        require(self.stride >= 1, f"match.stride must be >= 1, got {self.stride}")
        require(self.updates >= 1, f"match.updates must be >= 1, got {self.updates}")
        require(0 <= self.soft_label <= 1, f"match.soft_label must be in [0, 1], got {self.soft_label}")
        require(1 <= self.datm_initial <= self.max_start_epoch,
                f"match.datm_initial must be in [1, max_start_epoch={self.max_start_epoch}], got {self.datm_initial}")


@dataclass
class CondTSFConfig:
    """Value-term interpolation Ys <- (1-beta) Ys + beta f(theta_final; Xs) every ``every`` iterations."""

    enabled: bool = False
    beta: float = 0.01
    every: int = 1
    replaces_match: bool = False  # True (CondTSF's code): its iterations skip the matching update

    def validate(self):
        require(0 < self.beta <= 1, f"condtsf.beta must be in (0, 1], got {self.beta}")
        require(self.every >= 1, f"condtsf.every must be >= 1, got {self.every}")


@dataclass
class EvalConfig:
    """Fresh models trained on the synthetic set only; selection on validation, test read once."""

    models: list[str] = field(default_factory=lambda: ["dlinear", "mlp"])
    model_params: dict = field(default_factory=lambda: {"mlp": {"d_model": 64}})  # per model name
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 200  # one full-batch step per epoch on the synthetic windows
    lr: float = 1e-2  # 10 windows, full batch: 1e-3 needs ~4x the epochs for the same val MSE
    patience: int = 20
    select_every: int = 50  # candidate synthetic sets scored on validation every this many iterations
    select_epochs: int = 100  # a shorter fit for scoring candidates
    baseline_random: bool = True  # also evaluate a random real subset of the same size
    # CondTSF's code evaluates with SGD (lr 1e-4, momentum 0.9), batch 64, 250 epochs, the last epoch
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.0
    batch_size: int = 0  # 0 = full batch
    checkpoint: Literal["best", "last"] = "best"  # best (validation) | last

    def validate(self):
        require(len(self.models) >= 1 and len(self.seeds) >= 1, "eval.models and eval.seeds must not be empty")
        require(self.epochs >= 1 and self.select_epochs >= 1 and self.patience >= 1,
                "eval.epochs, eval.select_epochs and eval.patience must be >= 1")
        require(self.select_every >= 1, f"eval.select_every must be >= 1, got {self.select_every}")
        require(self.batch_size >= 0, f"eval.batch_size must be >= 0 (0 = full batch), got {self.batch_size}")


@dataclass
class CondenseRunConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(dataset="etth1", seq_len=24, pred_len=24))
    n_windows: int = 10
    method: str = "mtt+ddtime"  # see tdml.condensation.methods: base (random|mtt) + plug-ins
    # tdml.condensation.synthetic.LAYOUTS: 'series' (CondTSF's code: windows cut from one series) or
    # 'samples' (DDTime's paper: independent windows); a method's default unless set
    layout: str = "series"
    # tdml.condensation.methods.PROTOCOLS: 'ours' (validation-selected, the defaults above) or
    # 'published' (CondTSF's code: experts, matching schedule and evaluation; sets still chosen on
    # validation)
    protocol: str = "ours"
    seed: int = 0
    # '' = reuse a finished experts run with the same settings if one exists, else train;
    # 'runs:/<run_id>' = those experts; 'new' = always train
    experts_uri: str = ""
    experts: ExpertConfig = field(default_factory=ExpertConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    condtsf: CondTSFConfig = field(default_factory=CondTSFConfig)
    ddtime: DDTimeConfig = field(default_factory=DDTimeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="tdml-condense"))
    progress: bool = False

    def validate(self):
        require(self.n_windows >= 2, f"n_windows must be >= 2 (ISIB compares pairs), got {self.n_windows}")
        from tdml.condensation.methods import PROTOCOLS

        require(self.protocol in PROTOCOLS, f"protocol {self.protocol!r} unknown; valid: {', '.join(PROTOCOLS.names())}")
        require(self.layout in LAYOUTS, f"layout {self.layout!r} unknown; valid: {', '.join(LAYOUTS.names())} "
                                         f"(series: windows cut from one series, CondTSF; samples: independent "
                                         f"windows, DDTime)")
