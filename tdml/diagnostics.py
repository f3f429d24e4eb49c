"""FFT-period diagnostics of forecasts: spectra, period distributions at tau, top-k
periods, teacher-student KL per channel and error per scale.

Written as CSV (for tools without a browser) and as one self-contained plotly HTML
report (plotly.js embedded once, so it renders offline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from tdml.losses.timedistill import period_distribution


def _spectrum_sum(x: np.ndarray) -> np.ndarray:
    """Amplitude |rFFT| summed over windows, DC dropped: [C, F] (float64)."""
    return np.abs(np.fft.rfft(x.astype(np.float64), axis=1))[:, 1:].sum(axis=0).T


def _pooled(x: np.ndarray, k: int) -> np.ndarray:
    t = torch.from_numpy(x).transpose(1, 2).reshape(-1, 1, x.shape[1]).float()
    for _ in range(k):
        t = F.avg_pool1d(t, 2)
    return t.numpy()


# windows per chunk: every statistic below is a mean over windows, accumulated chunk by chunk so
# the FFTs, distributions and pooled copies of a wide split (Electricity's test split: 5,165
# windows x 96 x 321) never exist for the whole split at once
CHUNK = 256


# one colour per series in every subplot, so the legend names what each line is
COLORS = {"ground_truth": "#222222", "teacher": "#1f77b4", "student": "#d62728"}
# period ticks a reader recognises (steps): halvings of the horizon and calendar periods
NICE_PERIODS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 168, 192, 336, 720)


def fft_diagnostics(series: dict[str, np.ndarray], columns: list[str], out_dir: str | Path,
                    temperature: float = 0.5, scales: int = 3, top_k: int = 3,
                    title: str = "FFT-period diagnostics", html: bool = True) -> dict[str, float]:
    """Write the diagnostics of ``series`` ({'ground_truth': [N,H,C], 'teacher': ..., 'student': ...}).

    CSV always; the HTML report (plotly.js embedded once, ~5 MB) only with ``html`` -- a
    study's trials keep the CSV and leave the report to the parent and final runs.
    Returns summary numbers to log as metrics (KL and per-scale MSE means).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    H = next(iter(series.values())).shape[1]
    N = next(iter(series.values())).shape[0]
    freqs = np.arange(1, H // 2 + 1)
    periods = H / freqs
    pairs = [(a, b) for a, b in (("teacher", "student"), ("ground_truth", "student"),
                                 ("ground_truth", "teacher")) if a in series and b in series]
    levels = [k for k in range(scales + 1) if H // 2**k >= 1]
    amp_sum = {src: 0.0 for src in series}
    p_sum = {src: 0.0 for src in series}
    kl_sum = {pair: 0.0 for pair in pairs}
    sq_sum = {(src, k): 0.0 for src in series if src != "ground_truth" for k in levels}
    sq_n = {k: 0 for k in levels}
    for i in range(0, N, CHUNK):
        chunk = {src: arr[i:i + CHUNK] for src, arr in series.items()}
        logp = {}
        for src, x in chunk.items():
            amp_sum[src] = amp_sum[src] + _spectrum_sum(x)
            p = period_distribution(torch.from_numpy(np.ascontiguousarray(x)).float(), temperature, dim=1)  # [n, C, F]
            p_sum[src] = p_sum[src] + p.double().sum(0).numpy()
            logp[src] = (p, p.clamp_min(1e-12).log())
        for a, b in pairs:  # KL(P_a || P_b) per channel, summed over windows
            pa, la = logp[a]
            kl_sum[(a, b)] = kl_sum[(a, b)] + (pa * (la - logp[b][1])).sum(-1).double().sum(0).numpy()
        gt_pooled = {k: _pooled(chunk["ground_truth"], k) for k in levels}
        for k in levels:
            sq_n[k] += gt_pooled[k].size
            for src, x in chunk.items():
                if src != "ground_truth":
                    sq_sum[(src, k)] += float(((_pooled(x, k) - gt_pooled[k]).astype(np.float64) ** 2).sum())
    spec_rows, dist_rows, top_rows = [], [], []
    for src in series:
        amp, pmean = amp_sum[src] / N, p_sum[src] / N  # [C, F]
        for c, col in enumerate(columns):
            for f, per, a, q in zip(freqs, periods, amp[c], pmean[c]):
                spec_rows.append((src, col, int(f), float(per), float(a)))
                dist_rows.append((src, col, int(f), float(per), float(q)))
            for rank, f_idx in enumerate(np.argsort(-amp[c])[:top_k], start=1):
                top_rows.append((src, col, rank, float(periods[f_idx]), float(amp[c][f_idx])))
    spec = pd.DataFrame(spec_rows, columns=["source", "channel", "freq_index", "period", "amplitude"])
    dist = pd.DataFrame(dist_rows, columns=["source", "channel", "freq_index", "period", "probability"])
    top = pd.DataFrame(top_rows, columns=["source", "channel", "rank", "period", "amplitude"])
    kl_df = pd.DataFrame({"channel": columns, **{f"kl_{a}_{b}": kl_sum[(a, b)] / N for a, b in pairs}})
    err = pd.DataFrame([(src, k, sq_sum[(src, k)] / sq_n[k]) for src in series if src != "ground_truth"
                        for k in levels], columns=["source", "scale", "mse"])

    for name, df in (("spectrum", spec), ("period_distribution", dist), ("top_periods", top),
                     ("kl_per_channel", kl_df), ("error_per_scale", err)):
        df.to_csv(out / f"{name}.csv", index=False)
    if html:
        _report(spec, dist, kl_df, err, columns, out / "fft_report.html", title, temperature)

    summary = {f"diag_{c}_mean": float(kl_df[c].mean()) for c in kl_df.columns if c.startswith("kl_")}
    for row in err.itertuples():
        summary[f"diag_mse_{row.source}_scale{row.scale}"] = row.mse
    return summary


def _report(spec, dist, kl_df, err, columns, path: Path, title: str, tau: float) -> None:
    figs = []
    for label, df, y in (("Amplitude spectrum (mean |rFFT| over test windows)", spec, "amplitude"),
                         (f"Period distribution softmax(|rFFT|/tau), tau={tau}", dist, "probability")):
        fig = make_subplots(rows=len(columns), cols=1, subplot_titles=columns, shared_xaxes=True)
        for r, col in enumerate(columns, start=1):
            for src, g in df[df.channel == col].groupby("source", sort=False):
                color = COLORS.get(src)
                fig.add_trace(go.Scatter(x=g.period, y=g[y], name=src, legendgroup=src, showlegend=r == 1,
                                         mode="lines+markers", line={"color": color}, marker={"color": color}),
                              row=r, col=1)
        lo, hi = df.period.min(), df.period.max()
        ticks = [p for p in NICE_PERIODS if lo <= p <= hi]
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=[str(p) for p in ticks])
        fig.update_xaxes(title_text="period (steps)", row=len(columns), col=1)
        fig.update_layout(title=label, height=220 * len(columns) + 100)
        figs.append(fig)
    kl_cols = [c for c in kl_df.columns if c.startswith("kl_")]
    if kl_cols:
        fig = go.Figure([go.Bar(x=kl_df.channel, y=kl_df[c], name=c) for c in kl_cols])
        fig.update_layout(title="KL of period distributions per channel", barmode="group")
        figs.append(fig)
    if len(err):
        fig = go.Figure([go.Scatter(x=g.scale, y=g.mse, name=s, mode="lines+markers", line={"color": COLORS.get(s)})
                         for s, g in err.groupby("source", sort=False)])
        fig.update_layout(title="MSE vs ground truth per scale (AvgPool(2)^k)",
                          xaxis_title="scale k", yaxis_title="MSE")
        figs.append(fig)
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    path.write_text(f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"
                    f"<h1>{title}</h1>{''.join(parts)}</body></html>")
