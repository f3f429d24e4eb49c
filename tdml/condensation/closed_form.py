"""Closed-form least-squares DLinear: the converged full-data reference of a condensation benchmark.

DLinear is affine in its input: ``y = W_s (x - MA x) + W_t MA x + b`` per channel, and with
``W_s = W_t = W`` it is any affine map ``y = W x + b``. So the parameters minimising its
training MSE are an ordinary least-squares fit of every training window's target on its input
(pooled over channels for the shared model, one fit per channel with ``individual=True``),
solved from the normal equations accumulated in float64 over a loader. No gradient run reaches
a lower training MSE; ``tests/test_closed_form.py`` checks a long gradient run converges to it.
"""

from __future__ import annotations

import torch

from tdml.models.dlinear import DLinear


def _design(x: torch.Tensor) -> torch.Tensor:
    """[B, L, C] -> [B, C, L + 1]: each channel's window and a constant for the bias."""
    xc = x.transpose(1, 2).double()
    return torch.cat([xc, torch.ones_like(xc[..., :1])], dim=-1)


@torch.no_grad()
def fit_dlinear_least_squares(model: DLinear, loader, ridge: float = 0.0) -> DLinear:
    """Set ``model``'s weights (in place) to the least-squares fit on every batch of ``loader``
    (dicts with ``x`` [B, L, C] and ``y`` [B, H, C]) and return it. ``ridge`` > 0 adds
    ``ridge * n_samples * I`` to the weights' block of the normal matrix (not to the bias)."""
    if not isinstance(model, DLinear):
        raise TypeError(f"fit_dlinear_least_squares needs a DLinear, got {type(model).__name__}")
    individual = model.params.individual
    gram = rhs = None
    n = 0
    for batch in loader:
        z, y = _design(batch["x"]), batch["y"].transpose(1, 2).double()  # [B, C, L+1], [B, C, H]
        g = torch.einsum("bci,bcj->cij", z, z)
        r = torch.einsum("bci,bch->cih", z, y)
        if not individual:  # one map shared by every channel: pool the channels' equations
            g, r = g.sum(0, keepdim=True), r.sum(0, keepdim=True)
        gram = g if gram is None else gram + g
        rhs = r if rhs is None else rhs + r
        n += z.shape[0] * (1 if individual else z.shape[1])
    if gram is None:
        raise ValueError("fit_dlinear_least_squares: the loader yielded no batch")
    if ridge > 0:
        d = gram.shape[-1] - 1
        gram = gram.clone()
        gram[:, :d, :d] += ridge * n * torch.eye(d, dtype=gram.dtype)
    coef = torch.linalg.lstsq(gram, rhs).solution  # [C or 1, L+1, H]; lstsq copes with a singular gram
    w, b = coef[:, :-1], coef[:, -1]  # [C|1, L, H], [C|1, H]
    dtype = model.seasonal.weight.dtype
    if individual:
        for part in (model.seasonal, model.trend):
            part.weight.copy_(w.to(dtype))
        model.seasonal.bias.copy_(b.to(dtype))
    else:
        for part in (model.seasonal, model.trend):
            part.weight.copy_(w[0].T.to(dtype))  # nn.Linear: [H, L]
        model.seasonal.bias.copy_(b[0].to(dtype))
    model.trend.bias.zero_()  # seasonal + trend = x, so equal weights give W x; one bias suffices
    return model
