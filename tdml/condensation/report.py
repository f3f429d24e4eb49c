"""Condensation report: one offline plotly HTML (plotly.js embedded once) plus CSVs --
synthetic vs real series, their spectra, the pairwise-diversity matrix, loss curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tdml.condensation.plugins import pairwise_sym_kl


def _spectrum(w: np.ndarray) -> np.ndarray:
    """Mean |rFFT| over windows of [n, T, C] -> [F, C]."""
    return np.abs(np.fft.rfft(w, axis=1)).mean(axis=0)


def write_report(out_dir: str | Path, columns: list[str], syn_x: torch.Tensor, syn_y: torch.Tensor,
                 real_x: torch.Tensor, real_y: torch.Tensor, series: torch.Tensor | None,
                 init: torch.Tensor | None, start: tuple[torch.Tensor, torch.Tensor] | None,
                 history: list[dict], selection: list[dict], tau: float,
                 representation: str, title: str) -> dict[str, float]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from tdml.condensation.plugins import REPRESENTATIONS

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

    # 1b. every synthetic window against the real window it started from (its layout made visible:
    # cut from one series, neighbours share points; independent samples, they do not)
    if start is not None:
        figs.append(_windows_figure(out, columns, syn_w, torch.cat(start, 1).numpy(), syn_x.shape[1]))

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

    # 4. loss curves, validation scores and diversity of the candidate sets
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
        fig = make_subplots(rows=1, cols=2, subplot_titles=("validation MSE (selection)",
                                                            "diversity: mean pairwise symmetric KL"))
        fig.add_trace(go.Scatter(x=sel.iteration, y=sel.val_mse, mode="lines+markers", name="val MSE"), row=1, col=1)
        if "diversity_sym_kl" in sel:
            fig.add_trace(go.Scatter(x=sel.iteration, y=sel.diversity_sym_kl, mode="lines+markers", name="sym KL"),
                          row=1, col=2)
        figs.append(fig.update_layout(title="Each candidate synthetic set: a model trained on it, and its diversity",
                                      xaxis_title="iteration"))

    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    (out / "condense_report.html").write_text(
        f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h1>{title}</h1>"
        f"{''.join(parts)}</body></html>")
    return {"diversity_sym_kl_mean": float(off.mean()) if off.size else 0.0,
            "diversity_isib": float(np.exp(-off).mean()) if off.size else 1.0}


def _windows_figure(out: Path, columns: list[str], syn_w: np.ndarray, start_w: np.ndarray, seq_len: int):
    """One panel per synthetic window: each channel (toggle in the legend) learned (solid) vs the
    real window it started from (dotted); the dashed line marks where the labels begin."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n, T, _ = syn_w.shape
    rows = [{"window": i, "t": t, "source": src, **dict(zip(columns, w[i, t].tolist()))}
            for src, w in (("synthetic", syn_w), ("real start", start_w)) for i in range(n) for t in range(T)]
    pd.DataFrame(rows).to_csv(out / "windows_vs_start.csv", index=False)
    cols = min(n, 5)
    fig = make_subplots(rows=-(-n // cols), cols=cols, subplot_titles=[f"window {i}" for i in range(n)])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    for i in range(n):
        r, c = i // cols + 1, i % cols + 1
        for k, col in enumerate(columns):
            color = palette[k % len(palette)]
            for src, w, dash in (("synthetic", syn_w, "solid"), ("real start", start_w, "dot")):
                fig.add_trace(go.Scatter(y=w[i, :, k], name=f"{col} ({src})", legendgroup=col, showlegend=i == 0,
                                         line={"color": color, "dash": dash, "width": 1}), row=r, col=c)
        fig.add_vline(x=seq_len - 0.5, line_dash="dash", line_color="grey", row=r, col=c)
    return fig.update_layout(title="Every synthetic window (solid) vs the real window it started from (dotted)",
                             height=260 * (-(-n // cols)) + 120)
