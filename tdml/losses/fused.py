"""TimeDistill's two terms as single autograd nodes with hand-written backward passes.

The terms act on small tensors (a batch of forecasts, 128–512-wide features): written with
autograd, each is ~20–45 recorded ops forward and as many backward, and a step is bound by
op dispatch, not arithmetic (docs/results.md, "Cost"). Here the forward runs without
recording and the backward is the closed form, in a handful of ops. ``tests/test_timedistill.py``
checks values and gradients in float64: the period term against the reference code's formulas
(rel 1e-6), the multi-scale term against autograd through ``avg_pool1d`` (both code paths).

Gradients, for x along the last axis, z = rFFT(x)[1:] (F bins), A = sqrt(|z|^2 + eps),
l = log_softmax(A / tau), p = exp(l):

* period KL  L = c * sum p_t (l_t - q_s),  q_s = log(p_s + e) (reference, e > 0) or l_s;
  dL/dl_s = -c p_t p_s / (p_s + e);  dL/dl_t = c p_t (l_t - q_s + 1);
  log_softmax: g_u = g_l - p * sum(g_l);  g_A = g_u / tau;  g_z = g_A z / A;
  rFFT adjoint: g_x = irfft(Y, n) with Y_0 = 0, Y_k = n/2 g_k, and Y_{n/2} = n g_{n/2} for
  even n (irfft counts the Nyquist bin once).
* multi-scale  L = 1/K sum_k mean(d_k^2), d_0 = s - t, d_k = pool2(d_{k-1}):
  g_{d_k} = 2 d_k / (K |d_k|) + unpool(g_{d_{k+1}}), unpool = each value halved into its pair.
"""

from __future__ import annotations

import torch

# Peaked period distributions put most bins' log-probabilities far below -87, where a float32
# exp underflows to a subnormal or 0: CPU exp takes a ~100x slower path there, and products
# with such values in the backward pass are as slow. Flooring the exp argument at -50 keeps
# every probability and gradient product normal; it changes each such probability by < 2e-22
# (the loss by far less than float32 resolution).
EXP_FLOOR = -50.0


def spectrum(x: torch.Tensor, tau: float):
    """(z, |z|, log P, P) along the last axis: z = rFFT(x) without the DC bin, P = softmax(|z| / tau).

    The exp argument is floored at ``EXP_FLOOR``; P is the exp divided by its sum (one exp)."""
    z = torch.fft.rfft(x, dim=-1)[..., 1:]
    amp = (z.real.square() + z.imag.square()).add_(1e-20).sqrt_()  # 6x faster than view_as_real(z).square().sum(-1)
    u = amp / tau
    u = u - u.amax(-1, keepdim=True)
    e = u.clamp(min=EXP_FLOOR).exp_()
    total = e.sum(-1, keepdim=True)
    return z, amp, u - total.log(), e.div_(total)


def _spectrum_backward(g_u: torch.Tensor, z, amp, p, n: int) -> torch.Tensor:
    """d/dx from ``g_u`` = dL/dlog P / tau (the 1/tau of u = |z| / tau folded into it)."""
    g_u = g_u - p * g_u.sum(-1, keepdim=True)
    g_z = z * g_u.div_(amp).mul_(_rfft_adjoint_scale(n, g_u.shape[-1], amp))
    return torch.fft.irfft(torch.nn.functional.pad(g_z, (1, 0)), n=n, dim=-1)  # Y_0 = 0: DC dropped


_SCALES: dict = {}


def _rfft_adjoint_scale(n: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """n / 2 per bin, n at an even length's Nyquist bin (irfft counts that bin once)."""
    key = (n, bins, like.dtype, like.device)
    scale = _SCALES.get(key)
    if scale is None:  # a few entries per run (two lengths), kept for the process
        scale = torch.full((bins,), n / 2, dtype=like.dtype, device=like.device)
        if n % 2 == 0:
            scale[-1] = n
        _SCALES[key] = scale
    return scale


class PeriodKL(torch.autograd.Function):
    """KL(P_t || P_s) of period distributions along the last axis; see the module docstring.
    Student and teacher go through the transform as one stacked tensor (half the op count)."""

    @staticmethod
    def forward(ctx, s, t, tau: float, full: bool, log_eps: float):
        n = s.shape[-1]
        z, amp, lp, p = spectrum(torch.stack((s, t)), tau)
        lp_s, lp_t, p_s, p_t = lp[0], lp[1], p[0], p[1]
        use_eps = log_eps > 0 and not full
        q_s = torch.log(p_s + log_eps) if use_eps else lp_s
        kl_sum = torch.sum(p_t * (lp_t - q_s))
        n_dist = p_t.numel() // p_t.shape[-1]
        c = 1.0 / (n_dist if full else p_t.numel())
        ctx.save_for_backward(z, amp, p, lp_t, q_s)
        ctx.consts = (tau, c, log_eps if use_eps else 0.0, n)
        return kl_sum * c

    @staticmethod
    def backward(ctx, grad):
        z, amp, p, lp_t, q_s = ctx.saved_tensors
        tau, c, eps, n = ctx.consts
        p_s, p_t = p[0], p[1]
        gc = grad * (c / tau)  # the 1/tau of u = |z| / tau, applied once here
        need_s, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g_s = (-gc * p_t * (p_s / (p_s + eps) if eps else 1.0)) if need_s else None
        g_t = (gc * p_t * (lp_t - q_s + 1.0)) if need_t else None
        if need_s and need_t:
            g = _spectrum_backward(torch.stack((g_s, g_t)), z, amp, p, n)
            return g[0], g[1], None, None, None
        if need_s:
            return _spectrum_backward(g_s, z[0], amp[0], p_s, n), None, None, None, None
        if need_t:
            return None, _spectrum_backward(g_t, z[1], amp[1], p_t, n), None, None, None
        return None, None, None, None, None


_POOLS: dict = {}


def _pooling(n: int, scales: int, like: torch.Tensor) -> torch.Tensor:
    """W [n, sum_k n_k]: the k-fold AvgPool(2) of a length-n axis in its k-th block (k = 0..K-1,
    stopping where the length would drop below 1), block k scaled by 1 / sqrt(K n_k), so that
    ||d W||^2 / rows = 1/K sum_k mean(pool^k(d)^2)."""
    key = (n, scales, like.dtype, like.device)
    w = _POOLS.get(key)
    if w is None:  # one entry per (length, scales), kept for the process
        cur = torch.eye(n, dtype=torch.float64)
        blocks = [cur]
        for _ in range(scales):
            if cur.shape[1] < 2:
                break
            m = cur.shape[1] // 2
            cur = cur[:, : 2 * m].reshape(n, m, 2).mean(-1)  # columns: the pooled positions
            blocks.append(cur)
        w = torch.cat([b / (len(blocks) * b.shape[1]) ** 0.5 for b in blocks], dim=1)
        w = _POOLS[key] = w.to(device=like.device, dtype=like.dtype)
    return w


# Up to this length the pooled differences of every scale are one matmul with W (few ops; the
# terms are dispatch-bound there); above it W's n x ~2n multiply-adds per row cost more than the
# ~4 ops per scale of pooling by strided adds (forward + backward, 3 scales, one thread:
# [32, 7, 64] 181 vs 220 us, [32, 5, 128] 318 vs 235, [32, 7, 512] 4967 vs 455).
MATMUL_MAX_LEN = 64


def _pool2(x: torch.Tensor) -> torch.Tensor:
    """AvgPool1d(2) along the last axis (a trailing odd element dropped): even + odd positions,
    halved (8x faster on CPU than a mean over an unflattened pair axis, which reduces a size-2 axis)."""
    m = x.shape[-1] // 2
    return (x[..., 0 : 2 * m : 2] + x[..., 1 : 2 * m : 2]).mul_(0.5)


class MultiScaleMSE(torch.autograd.Function):
    """Mean over scales of MSE(pool2^k(s - t)) along the last axis; see the module docstring.
    Short axes: all scales at once, the pooled differences being d @ W (``_pooling``); long
    axes: pooled by reshape, the gradient unpooled scale by scale."""

    @staticmethod
    def forward(ctx, s, t, scales: int):
        d = s - t
        rows = d.numel() // d.shape[-1]
        ctx.rows, ctx.matmul = rows, d.shape[-1] <= MATMUL_MAX_LEN
        if ctx.matmul:
            w = _pooling(d.shape[-1], scales, d)
            y = d @ w
            ctx.save_for_backward(y, w)
            return y.square().sum() / rows
        pooled, total = [d], d.square().mean()
        for _ in range(scales):
            if pooled[-1].shape[-1] < 2:
                break
            pooled.append(_pool2(pooled[-1]))
            total = total + pooled[-1].square().mean()
        ctx.save_for_backward(*pooled)
        return total / len(pooled)

    @staticmethod
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        if ctx.matmul:
            y, w = saved
            g = (y @ w.T).mul_(grad * (2.0 / ctx.rows))
        else:
            g = _unpool_gradient(saved) * grad
        return (g if ctx.needs_input_grad[0] else None), (-g if ctx.needs_input_grad[1] else None), None


def _unpool_gradient(pooled) -> torch.Tensor:
    """d/d d_0 of 1/K sum_k mean(d_k^2), from the coarsest scale back: each scale adds its own
    2 d_k / (K |d_k|) to the unpooled gradient of the coarser one (half to each of a pair)."""
    k, g = len(pooled), None
    for d in reversed(pooled):
        own = d * (2.0 / (k * d.numel()))
        if g is not None:  # a trailing odd element the pool dropped gets nothing from the coarser scale
            half, m = g * 0.5, g.shape[-1]
            own[..., 0 : 2 * m : 2] += half
            own[..., 1 : 2 * m : 2] += half
        g = own
    return g
