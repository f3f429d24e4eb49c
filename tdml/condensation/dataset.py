"""Synthetic sets as data: a loader over fixed windows, the artifact format, and the
``runs:/<run_id>/synthetic`` dataset kind (train = the synthetic windows, val/test = the
original dataset's real splits, so metrics stay honest).

Artifact ``synthetic/``: ``synthetic.npz`` (x [n, L, C], y [n, H, C], series [T, C] -- empty
for a window set that is not cut from one series), ``series.csv`` / ``windows.csv`` (the same
numbers, scaled units, for tools without numpy) and ``synthetic.json`` (where it came from).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tdml import tracking
from tdml.config import DataConfig
from tdml.data import LOADERS
from tdml.data.batching import INDEX, EpochOrder
from tdml.data.forecast import ForecastData, Split, load_forecast_data
from tdml.errors import DataError

ARTIFACT_DIR = "synthetic"


class WindowSetLoader:
    """Batches of fixed windows (dicts with ``x``, ``y``), seeded shuffle re-seeded per epoch,
    last partial batch kept -- the same contract as ``WindowLoader``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0):
        self.x, self.y = x, y
        self.n_windows = x.shape[0]
        self.order = EpochOrder(self.n_windows, batch_size, shuffle, seed)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        for idx in self.order:
            yield {"x": self.x[idx], "y": self.y[idx], INDEX: idx}


@dataclasses.dataclass
class SyntheticForecastData(ForecastData):
    """ForecastData whose train split is a set of windows; calendar features are dropped
    everywhere (a synthetic window has no dates)."""

    train_x: torch.Tensor = None
    train_y: torch.Tensor = None

    def split_array(self, split: str):
        return self.train_x.numpy() if split == "train" else super().split_array(split)

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0):
        if split == "train":
            return WindowSetLoader(self.train_x, self.train_y, batch_size, shuffle, seed)
        return super().loader(split, batch_size, shuffle, seed)


def with_train_windows(data: ForecastData, x: torch.Tensor, y: torch.Tensor, name: str | None = None) -> SyntheticForecastData:
    """``data`` with its training split replaced by the windows (x, y); val/test kept, marks dropped."""
    splits = {s: Split(sp.values, None) for s, sp in data.splits.items()}
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(ForecastData)}
    fields.update(splits=splits, name=name or data.name)
    return SyntheticForecastData(**fields, train_x=x.detach().float(), train_y=y.detach().float())


def random_real_windows(data: ForecastData, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` distinct real training windows drawn uniformly (the random-subset baseline)."""
    v, L, H = data.splits["train"].values, data.seq_len, data.pred_len
    starts = torch.randperm(v.shape[0] - L - H + 1, generator=generator)[:n]
    idx = starts[:, None] + torch.arange(L + H)
    w = v[idx]
    return w[:, :L].clone(), w[:, L:].clone()


def save_synthetic(directory: Path, x: torch.Tensor, y: torch.Tensor, series: torch.Tensor | None,
                   columns: list[str], meta: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    xs, ys = x.detach().cpu().numpy(), y.detach().cpu().numpy()
    s = np.zeros((0, len(columns)), np.float32) if series is None else series.detach().cpu().numpy()
    np.savez(directory / "synthetic.npz", x=xs, y=ys, series=s)
    if len(s):
        pd.DataFrame(s, columns=columns).rename_axis("t").to_csv(directory / "series.csv")
    rows = [{"window": i, "t": t, "part": "x" if t < xs.shape[1] else "y",
             **dict(zip(columns, (xs[i, t] if t < xs.shape[1] else ys[i, t - xs.shape[1]]).tolist()))}
            for i in range(xs.shape[0]) for t in range(xs.shape[1] + ys.shape[1])]
    pd.DataFrame(rows).to_csv(directory / "windows.csv", index=False)
    (directory / "synthetic.json").write_text(json.dumps({**meta, "columns": columns,
                                                          "n_windows": int(xs.shape[0])}, indent=2))
    return directory


def read_synthetic(directory: Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    with np.load(directory / "synthetic.npz", allow_pickle=False) as z:
        x, y = torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
    return x, y, json.loads((directory / "synthetic.json").read_text())


@LOADERS.register("runs")  # tdml.data names this module as the plug-in of that kind
def load_synthetic_dataset(cfg: DataConfig) -> SyntheticForecastData:
    """The ``runs`` dataset kind: ``runs:/<run_id>/synthetic`` (the suffix may be omitted)."""
    rest = cfg.dataset[len("runs:/"):] if cfg.dataset.startswith("runs:/") else ""
    parts = [p for p in rest.split("/") if p]
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] != ARTIFACT_DIR):
        raise DataError(f"dataset {cfg.dataset!r}: a condensed dataset is named runs:/<run_id>/{ARTIFACT_DIR} "
                        f"(the run of `tdml condense`)")
    run_id = parts[0]
    x, y, meta = read_synthetic(tracking.download_run_artifacts(run_id, ARTIFACT_DIR))
    src = meta["data"]
    for k, have in (("seq_len", x.shape[1]), ("pred_len", y.shape[1])):
        want = getattr(cfg, k)
        if want not in (0, have):
            raise DataError(f"dataset {cfg.dataset!r} has {k} {have}, requested {want}; pass --{k.replace('_', '-')} "
                            f"{have} (or 0 / leave it out)")
    real = load_forecast_data(DataConfig(dataset=src["dataset"], data_path=src.get("data_path") or None,
                                         seq_len=x.shape[1], pred_len=y.shape[1], batch_size=cfg.batch_size,
                                         split=cfg.split))
    if real.sha256 and src.get("sha256") and real.sha256 != src["sha256"]:
        raise DataError(f"dataset {cfg.dataset!r} was condensed from {src['dataset']} with sha256 "
                        f"{src['sha256'][:12]}..., the file found now has {real.sha256[:12]}...; "
                        f"point TDML_DATA_DIR / data_path at the original file")
    return with_train_windows(real, x, y, name=f"{real.name}-condensed-{run_id[:8]}")
