"""The condensation loop: MTT on the synthetic series, plus the switchable plug-ins.

Per iteration: pick an expert and a start epoch t (DATM: the window of t widens, or slides),
then ``match.updates`` times: unroll K SGD steps from theta*_t on the freshly cut synthetic
windows (on soft labels if ``match.soft_label`` < 1), match theta*_{t+M}; add the DDTime value
(alpha) and ISIB (lambda) terms; one Adam step on the synthetic set (and the inner lr).
CondTSF interpolates the labels every few iterations (after the step, or -- CondTSF's code --
instead of it). Every ``select_every`` iterations
the current set is scored on *validation* by ``score`` and the best one is kept.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from tdml.condensation.config import CondenseRunConfig
from tdml.condensation.experts import Experts
from tdml.condensation.matching import matching_loss, predict, unroll
from tdml.condensation.plugins import DDTimeTerms, pairwise_sym_kl, REPRESENTATIONS
from tdml.condensation.synthetic import LAYOUTS
from tdml.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class CondenseResult:
    series: torch.Tensor | None  # the selected synthetic series [T, C] (None: independent samples)
    init: torch.Tensor  # the initial values (a real segment, or the real windows)
    x: torch.Tensor
    y: torch.Tensor
    selected_iteration: int
    selected_score: float
    init_x: torch.Tensor | None = None  # the real windows each synthetic window started from
    init_y: torch.Tensor | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    selection: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # the matching loop only, scoring excluded


def diversity(x: torch.Tensor, y: torch.Tensor, tau: float, representation: str) -> dict[str, float]:
    """DDTime's diversity metric of a window set: the mean pairwise symmetric KL between the
    windows' softmax(z / tau) (higher = more diverse), and the ISIB value exp(-D) it implies."""
    d = pairwise_sym_kl(REPRESENTATIONS.get(representation)(x, y), tau)
    off = d[~torch.eye(len(d), dtype=torch.bool)]
    return {"diversity_sym_kl": float(off.mean()), "diversity_isib": float(torch.exp(-off).mean())}


def start_epoch_range(cfg: CondenseRunConfig, it: int, n_epochs: int) -> tuple[int, int]:
    """[lo, hi) of the start epoch t at iteration ``it``. DATM ``widen``: [0, hi) grows linearly
    from datm_initial to max_start_epoch; ``slide`` (CondTSF's code): [0, 2) moves up by one every
    40 iterations, to at most [max_start_epoch + 8, max_start_epoch + 12)."""
    m = cfg.match
    last = n_epochs - m.expert_epochs + 1  # a start needs its target M epochs later
    if m.datm and m.datm_mode == "slide":
        step = it // 40
        lo, hi = min(step, m.max_start_epoch + 8), min(2 + step, m.max_start_epoch + 12)
        hi = min(hi, last)
        return min(lo, hi - 1) if hi > 0 else 0, max(hi, 1)
    hi = min(m.max_start_epoch, last)
    if m.datm:
        frac = it / max(cfg.match.iterations - 1, 1)
        hi = min(hi, m.datm_initial + round(frac * (m.max_start_epoch - m.datm_initial)))
    return 0, max(hi, 1)


def start_epoch_bound(cfg: CondenseRunConfig, it: int, n_epochs: int) -> int:
    """Exclusive upper bound of the start epoch t at iteration ``it``."""
    return start_epoch_range(cfg, it, n_epochs)[1]


def _match_step(syn, model, spec, plugins: DDTimeTerms, m, log_lr, start, target, final, it: int):
    """The terms, their total, and the values to log of one matching update on the current synthetic
    windows (the matching term logged before any normalisation: normalised it is always 1)."""
    x, y = syn.windows()
    lr = log_lr.exp() if m.learn_inner_lr else m.inner_lr
    # CondTSF's code trains the inner student on soft labels: a share of the target expert's forecast
    y_in = y if m.soft_label >= 1 else m.soft_label * y + (1 - m.soft_label) * predict(model, spec, target, x)
    theta_k = unroll(model, spec, start, x, y_in, lr, m.syn_steps)
    expert_pred = student_pred = None
    dd = plugins.cfg
    if dd.freq:  # the expert's forecast is the target; detached unless value_grad=inputs
        with torch.set_grad_enabled(dd.value_grad == "inputs"):
            expert_pred = predict(model, spec, final, x)
        if dd.value_pair == "student":
            student_pred = predict(model, spec, theta_k, x)
    match = matching_loss(theta_k, start, target)
    raw = float(match.detach())
    if m.normalize:  # CondTSF's code: the loss over its own value (its gradient, not its size, matters)
        match = match / match.detach().clamp_min(1e-12)
    terms = {"match": match, **plugins(x, y, expert_pred, student_pred)}
    total = plugins.total(terms)  # the matching term has no plug-in weight: it counts once
    if not torch.isfinite(total):
        raise FloatingPointError(f"non-finite condensation loss at iteration {it}: "
                                 f"{ {k: float(v) for k, v in terms.items()} }; lower match.series_lr "
                                 f"or match.inner_lr")
    return terms, total, {**{k: float(v.detach()) for k, v in terms.items()}, "match": raw}


def condense(data, experts: Experts, cfg: CondenseRunConfig, generator: torch.Generator,
             score: Callable[[torch.Tensor, torch.Tensor], float],
             on_iteration: Callable[[int, dict[str, float]], None] | None = None,
             device: torch.device | None = None) -> CondenseResult:
    """The selected synthetic set (on CPU) and the loop's history; ``score(x, y)`` -> validation MSE."""
    m, ct = cfg.match, cfg.condtsf
    plugins = DDTimeTerms(cfg.ddtime)
    if experts.n_epochs < m.expert_epochs:
        raise ConfigError(f"match.expert_epochs={m.expert_epochs} exceeds the experts' {experts.n_epochs} "
                          f"epochs; lower it or train experts longer (experts.epochs)")
    device = device or torch.device("cpu")  # resolved once by the caller (tdml.train.resolve_device)
    syn = LAYOUTS.get(cfg.layout).from_real(data.splits["train"].values, cfg.n_windows, data.seq_len,
                                            data.pred_len, m.stride, generator).to(device)
    init = syn.values.detach().cpu().clone()
    model = experts.model().to(device).train()  # train mode: BatchNorm uses batch statistics
    for p in model.parameters():
        p.requires_grad_(False)  # parameters come from the flat vector, never from the module
    trajs = experts.trajectories.to(device)
    log_lr = torch.tensor(math.log(max(m.inner_lr, 1e-12)), device=device, requires_grad=m.learn_inner_lr)
    opt = torch.optim.Adam([syn.values], lr=m.series_lr)
    opt_lr = torch.optim.Adam([log_lr], lr=m.lr_lr) if m.learn_inner_lr else None
    n_exp = trajs.shape[0]

    best = (math.inf, -1, init.clone())
    x0, y0 = syn.windows(init)
    result = CondenseResult(syn.series(init), init, x0, y0, selected_iteration=-1, selected_score=math.inf)
    matching_seconds = 0.0

    def select(it: int) -> None:
        nonlocal best
        s = syn.values.detach().cpu().clone()
        x, y = syn.windows(s)
        val = score(x, y)
        result.selection.append({"iteration": it, "val_mse": val, **diversity(x, y, cfg.ddtime.tau,
                                                                             cfg.ddtime.representation)})
        log.info("iteration %d: candidate val_mse=%.4f", it, val)
        if val < best[0]:
            best = (val, it, s)

    @torch.no_grad()
    def condtsf_step(final: torch.Tensor) -> None:  # the labels toward the final expert's forecast
        syn.interpolate_labels(predict(model, experts.spec, final, syn.windows()[0]), ct.beta)

    select(0)
    for it in range(m.iterations):
        t0 = time.perf_counter()
        i = int(torch.randint(0, n_exp, (1,), generator=generator))
        lo, hi = start_epoch_range(cfg, it, experts.n_epochs)
        t = lo + int(torch.randint(0, hi - lo, (1,), generator=generator))
        start, target, final = trajs[i, t], trajs[i, t + m.expert_epochs], trajs[i, -1]
        label_step = ct.enabled and (it + 1) % ct.every == 0
        for _ in range(m.updates):  # CondTSF's code: 2 updates per iteration from the same start
            if label_step and ct.replaces_match:  # its CondTSF iterations update labels only
                condtsf_step(final)
                continue
            _, total, logged = _match_step(syn, model, experts.spec, plugins, m, log_lr, start, target, final, it)
            opt.zero_grad(set_to_none=True)
            if opt_lr:
                opt_lr.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if opt_lr:
                opt_lr.step()
        if label_step and not ct.replaces_match:
            condtsf_step(final)
        matching_seconds += time.perf_counter() - t0
        if not (label_step and ct.replaces_match):  # an iteration of labels only has no terms to log
            row = {"iteration": it, "loss": float(total.detach()), "start_epoch": t,
                   "inner_lr": float(log_lr.detach().exp()), **logged}
            result.history.append(row)
            if on_iteration:
                on_iteration(it, row)
        if (it + 1) % cfg.eval.select_every == 0 or it + 1 == m.iterations:
            select(it + 1)
    score_best, it_best, values = best
    x, y = syn.windows(values)
    result.series, result.x, result.y = syn.series(values), x.detach().clone(), y.detach().clone()
    result.init_x, result.init_y = (w.detach().clone() for w in syn.windows(init))
    result.selected_iteration, result.selected_score = it_best, score_best
    result.seconds = matching_seconds
    return result
