"""Results tables in the layout of the MemKD paper: datasets × methods, mean ± std over seeds,
average rank and wins, with published values beside ours.

Input is long form: one record per run with ``dataset``, ``method``, ``seed`` and the score.
Rules (also in docs/classification.md):

- mean and std over a cell's seeds; std is the sample std (ddof = 1), 0 for a single seed;
  NaN scores are dropped from a cell (and counted in ``n_nan``).
- ranks per dataset over the compared methods' means, 1 = best; tied means share the
  average of their ranks (1, 2.5, 2.5, 4). Average rank is the mean over datasets. A method
  missing on a dataset is not ranked there.
- wins: datasets where a method's mean is the best; every method tied for best gets a win.
- ``reference`` methods (the teacher) are shown but neither ranked nor counted for wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

# docs/methods.md §2.7, the paper's AUC-PRC table (percent): two teacher reference columns, then
# Base / KD / FitNet / DT2W / MemKD. "teacher" is the first teacher column, "teacher_2" the second.
PUBLISHED_AUC_PRC: dict[str, dict[str, float]] = {
    "ItalyPowerDemand": {"teacher": 99.24, "teacher_2": 98.21, "none": 94.22, "kd": 98.63, "fitnet": 97.23,
                         "dt2w": 97.94, "memkd": 98.66},
    "Trace": {"teacher": 73.84, "teacher_2": 54.39, "none": 64.76, "kd": 69.25, "fitnet": 74.11,
              "dt2w": 53.14, "memkd": 78.76},
    "SwedishLeaf": {"teacher": 92.13, "teacher_2": 89.65, "none": 70.75, "kd": 71.47, "fitnet": 71.72,
                    "dt2w": 73.14, "memkd": 77.37},
    "MoteStrain": {"teacher": 83.89, "teacher_2": 80.75, "none": 82.74, "kd": 81.87, "fitnet": 78.16,
                   "dt2w": 84.21, "memkd": 84.13},
}
PUBLISHED_AVERAGE_12: dict[str, float] = {"none": 63.42, "kd": 67.39, "fitnet": 68.05, "memkd": 73.66}

METHOD_LABELS = {"teacher": "Teacher", "none": "Base", "kd": "KD", "fitnet": "FitNet", "rkd": "RKD",
                 "at": "AT", "dkd": "DKD", "dt2w": "DT2W", "memkd": "MemKD"}


@dataclass
class ResultsTable:
    cells: pd.DataFrame  # one row per (dataset, method): mean, std, n, n_nan, rank, best, published
    summary: pd.DataFrame  # one row per method: avg_rank, wins, datasets
    datasets: list[str]
    methods: list[str]
    metric: str
    scale: float = 1.0
    reference: tuple[str, ...] = field(default_factory=tuple)

    def to_csv(self, path) -> None:
        out = self.cells.merge(self.summary, on="method", how="left")
        out.to_csv(path, index=False)

    def to_markdown(self, digits: int = 2, published_label: str = "paper") -> str:
        """Datasets as rows, methods as columns: ``mean ± std`` with the published value in
        parentheses where one exists (bold: best mean on that row among ranked methods);
        then rows for average rank and wins."""
        c = self.cells.set_index(["dataset", "method"])
        head = ["dataset", *(METHOD_LABELS.get(m, m) for m in self.methods)]
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(self.methods) + "|"]
        for d in self.datasets:
            row = [d]
            for m in self.methods:
                if (d, m) not in c.index:
                    row.append("–")
                    continue
                r = c.loc[(d, m)]
                txt = "NaN" if math.isnan(r["mean"]) else f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f}"
                if r["best"]:
                    txt = f"**{txt}**"
                if not math.isnan(r["published"]):
                    txt += f" ({r['published']:.2f})"
                row.append(txt)
            lines.append("| " + " | ".join(row) + " |")
        s = self.summary.set_index("method")
        lines.append("| avg rank | " + " | ".join(
            "–" if m in self.reference or math.isnan(s.loc[m, "avg_rank"]) else f"{s.loc[m, 'avg_rank']:.2f}"
            for m in self.methods) + " |")
        lines.append("| wins | " + " | ".join(
            "–" if m in self.reference or s.loc[m, "datasets"] == 0 else str(int(s.loc[m, "wins"]))
            for m in self.methods) + " |")
        has_pub = bool(self.cells.published.notna().any())
        note = (f"\n{self.metric} × {self.scale:g}, mean ± std (sample std) over seeds; "
                + (f"({published_label}) = published value; " if has_pub else "")
                + "bold = best mean among ranked methods; "
                "ranks 1 = best, ties share the average rank.")
        return "\n".join(lines) + "\n" + note + "\n"

    def figure(self, title: str | None = None):
        """Plotly grouped bars (mean ± std per method, per dataset) with published values as markers."""
        import plotly.graph_objects as go

        fig = go.Figure()
        c = self.cells
        for m in self.methods:
            sub = c[c.method == m].set_index("dataset").reindex(self.datasets)
            fig.add_trace(go.Bar(name=METHOD_LABELS.get(m, m), x=self.datasets, y=sub["mean"],
                                 error_y=dict(type="data", array=sub["std"], visible=True)))
        pub = c[~c.published.isna()]
        if len(pub):
            fig.add_trace(go.Scatter(name="published", mode="markers", x=pub.dataset, y=pub.published,
                                     marker=dict(symbol="x", size=9, color="black"),
                                     text=[METHOD_LABELS.get(m, m) for m in pub.method],
                                     hovertemplate="%{x} %{text}: %{y:.2f} (published)<extra></extra>"))
        fig.update_layout(barmode="group", title=title or f"{self.metric} (mean ± std over seeds)",
                          yaxis_title=f"{self.metric} × {self.scale:g}", legend_title="method")
        return fig


def rank_desc(values: Sequence[float], higher_is_better: bool = True) -> list[float]:
    """Competition ranks with ties averaged (1 = best); NaN gets NaN."""
    v = np.asarray(values, dtype=float)
    out = [math.nan] * len(v)
    ok = [i for i in range(len(v)) if not math.isnan(v[i])]
    key = (-v if higher_is_better else v)
    order = sorted(ok, key=lambda i: key[i])
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and key[order[j + 1]] == key[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1  # positions i..j (0-based) share the mean of ranks i+1..j+1
        for k in order[i:j + 1]:
            out[k] = avg
        i = j + 1
    return out


def results_table(records: Iterable[Mapping] | pd.DataFrame, metric: str = "test_auc_prc",
                  methods: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
                  higher_is_better: bool = True, scale: float = 100.0,
                  reference: Sequence[str] = ("teacher",),
                  published: Mapping[str, Mapping[str, float]] | None = None) -> ResultsTable:
    """Aggregate per-run ``records`` (dataset, method, seed, ``metric``) into the paper's table."""
    df = pd.DataFrame(list(records) if not isinstance(records, pd.DataFrame) else records)
    missing = {"dataset", "method", metric} - set(df.columns)
    if missing:
        raise ValueError(f"records lack column(s) {', '.join(sorted(missing))}; have {', '.join(df.columns)}")
    methods = list(methods or dict.fromkeys(df.method))
    datasets = list(datasets or dict.fromkeys(df.dataset))
    published = published or {}
    rows = []
    for d in datasets:
        for m in methods:
            vals = df[(df.dataset == d) & (df.method == m)][metric].astype(float).to_numpy() * scale
            if len(vals) == 0:
                continue
            finite = vals[~np.isnan(vals)]
            mean = float(finite.mean()) if len(finite) else math.nan
            std = float(finite.std(ddof=1)) if len(finite) > 1 else (0.0 if len(finite) else math.nan)
            rows.append({"dataset": d, "method": m, "mean": mean, "std": std, "n": len(finite),
                         "n_nan": int(len(vals) - len(finite)),
                         "published": float(published.get(d, {}).get(m, math.nan))})
    cells = pd.DataFrame(rows, columns=["dataset", "method", "mean", "std", "n", "n_nan", "published"])
    cells["rank"] = math.nan
    cells["best"] = False
    for d in datasets:
        idx = cells.index[(cells.dataset == d) & ~cells.method.isin(reference)]
        if len(idx) == 0:
            continue
        ranks = rank_desc(cells.loc[idx, "mean"].tolist(), higher_is_better)
        cells.loc[idx, "rank"] = ranks
        finite = [r for r in ranks if not math.isnan(r)]
        if finite:  # tied best means share the lowest (averaged) rank
            cells.loc[idx, "best"] = [r == min(finite) for r in ranks]
    summary = []
    for m in methods:
        sub = cells[cells.method == m]
        ranked = sub["rank"].dropna()
        summary.append({"method": m, "avg_rank": float(ranked.mean()) if len(ranked) else math.nan,
                        "wins": int(sub["best"].sum()), "datasets": int(len(sub))})
    return ResultsTable(cells, pd.DataFrame(summary), datasets, methods, metric, scale, tuple(reference))
