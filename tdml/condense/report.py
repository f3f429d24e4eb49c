"""Condensation report: one offline plotly HTML (plotly.js embedded once) plus CSVs --
synthetic vs real series, their spectra, the pairwise-diversity matrix, loss curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tdml.condense.plugins import pairwise_sym_kl


def _spectrum(w: np.ndarray) -> np.ndarray:
    """Mean |rFFT| over windows of [n, T, C] -> [F, C]."""
    return np.abs(np.fft.rfft(w, axis=1)).mean(axis=0)


def write_report(out_dir: str | Path, columns: list[str], syn_x: torch.Tensor, syn_y: torch.Tensor,
                 real_x: torch.Tensor, real_y: torch.Tensor, series: torch.Tensor | None,
                 init: torch.Tensor | None, history: list[dict], selection: list[dict], tau: float,
                 representation: str, title: str) -> dict[str, float]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from tdml.condense.plugins import REPRESENTATIONS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    syn_w = torch.cat([syn_x, syn_y], 1).detach().numpy()
    real_w = torch.cat([real_x, real_y], 1).numpy()
    figs = []

    # 1. series: the learned series vs its real initialisation (or the windows end to end)
    s = series.numpy() if series is not None else syn_w.reshape(-1, syn_w.shape[2])
    r = init.numpy() if init is not None else None
    df = pd.DataFrame(s, columns=columns).assign(t=np.arange(len(s)), source="synthetic")
    if r is not None:
        df = pd.concat([df, pd.DataFrame(r, columns=columns).assign(t=np.arange(len(r)), source="real init")])
    df.to_csv(out / "series.csv", index=False)
    fig = make_subplots(rows=len(columns), cols=1, subplot_titles=columns, shared_xaxes=True)
    for i, col in enumerate(columns, start=1):
        for src, g in df.groupby("source", sort=False):
            fig.add_trace(go.Scatter(x=g.t, y=g[col], name=src, legendgroup=src, showlegend=i == 1), row=i, col=1)
    fig.update_layout(title="Synthetic series vs the real segment it started from (scaled units)",
                      height=180 * len(columns) + 100)
    figs.append(fig)

    # 2. spectra of synthetic vs real training windows
    fs, fr = _spectrum(syn_w), _spectrum(real_w)
    spec = pd.concat([pd.DataFrame(fs, columns=columns).assign(freq=np.arange(len(fs)), source="synthetic"),
                      pd.DataFrame(fr, columns=columns).assign(freq=np.arange(len(fr)), source="real train")])
    spec.to_csv(out / "spectrum.csv", index=False)
    fig = make_subplots(rows=len(columns), cols=1, subplot_titles=columns, shared_xaxes=True)
    for i, col in enumerate(columns, start=1):
        for src, g in spec.groupby("source", sort=False):
            fig.add_trace(go.Scatter(x=g.freq, y=g[col], name=src, legendgroup=src, showlegend=i == 1,
                                     mode="lines+markers"), row=i, col=1)
    fig.update_layout(title="Mean amplitude spectrum |rFFT| of x||y windows", height=180 * len(columns) + 100)
    figs.append(fig)

    # 3. pairwise diversity: symmetric KL between the ISIB distributions of the synthetic windows
    z = REPRESENTATIONS.get(representation)(syn_x.detach(), syn_y.detach())
    d = pairwise_sym_kl(z, tau).numpy()
    pd.DataFrame(d).to_csv(out / "diversity_matrix.csv")
    figs.append(go.Figure(go.Heatmap(z=d, colorscale="Viridis")).update_layout(
        title=f"Pairwise symmetric KL of softmax(z/tau), z={representation}, tau={tau}",
        xaxis_title="window j", yaxis_title="window i"))
    off = d[~np.eye(len(d), dtype=bool)]

    # 4. loss curves and validation scores of the candidate sets
    if history:
        h = pd.DataFrame(history)
        h.to_csv(out / "loss_curves.csv", index=False)
        fig = go.Figure([go.Scatter(x=h.iteration, y=h[c], name=c) for c in h.columns
                         if c in ("loss", "match", "value", "isib")])
        fig.update_layout(title="Condensation losses per iteration", xaxis_title="iteration", yaxis_type="log")
        figs.append(fig)
    if selection:
        sel = pd.DataFrame(selection)
        sel.to_csv(out / "selection.csv", index=False)
        figs.append(go.Figure(go.Scatter(x=sel.iteration, y=sel.val_mse, mode="lines+markers")).update_layout(
            title="Validation MSE of a model trained on each candidate synthetic set (selection)",
            xaxis_title="iteration", yaxis_title="val MSE"))

    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    (out / "condense_report.html").write_text(
        f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h1>{title}</h1>"
        f"{''.join(parts)}</body></html>")
    return {"diversity_sym_kl_mean": float(off.mean()) if off.size else 0.0,
            "diversity_isib": float(np.exp(-off).mean()) if off.size else 1.0}
