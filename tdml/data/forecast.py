"""Forecasting data: read and check a CSV, split, scale on train, cut sliding windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tdml.config import DataConfig
from tdml.data.batching import INDEX, EpochOrder
from tdml.data import frames
from tdml.data.catalog import CATALOG
from tdml.data.download import resolve, sha256_of
from tdml.data.hygiene import Hygiene, check_order, clean_columns, parse_dates
from tdml.data.splits import SPLITS
from tdml.data.synthetic import make_synthetic
from tdml.data.timefeatures import infer_freq, time_features
from tdml.errors import DataError
from tdml.contracts import Dims

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SEQ_LEN, DEFAULT_PRED_LEN = 96, 24  # used when DataConfig leaves them at 0


def read_csv(path: str | Path, duplicates: str = "keep") -> tuple[pd.DataFrame, Hygiene]:
    """Read a Time-Series-Library CSV (optional ``date`` column + numeric columns), checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; check --data-path / TDML_DATA_DIR")
    try:
        df = pd.read_csv(path)
    except Exception as e:  # pandas raises many parser error types
        raise DataError(f"could not parse {path} as CSV: {e}") from None
    return check_frame(df, str(path), duplicates)


def check_frame(df: pd.DataFrame, source: str, duplicates: str = "keep") -> tuple[pd.DataFrame, Hygiene]:
    """The frame with clean column names, parsed dates in time order and (policy) duplicates
    dropped, after the checks every source gets; and the report of what was found."""
    report = Hygiene()
    df = clean_columns(df, source, report)
    if "date" in df.columns:
        df = df.assign(date=parse_dates(df["date"], source))
        df = check_order(df, source, duplicates, report)
    values = df.drop(columns=["date"], errors="ignore")
    if values.shape[1] == 0:
        raise DataError(f"{source}: no numeric columns besides 'date'")
    bad = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
    if bad:
        raise DataError(f"{source}: column(s) {', '.join(map(repr, bad))} are not numeric; "
                        f"remove them or convert them to numbers (only 'date' may be non-numeric)")
    nans = values.isna().sum()
    nans = nans[nans > 0]
    if len(nans):
        detail = ", ".join(f"{c!r} ({n} missing)" for c, n in nans.items())
        raise DataError(f"{source}: missing values (NaN) in {detail}; fill or drop them first "
                        f"(e.g. df.interpolate().bfill()) -- tdml does not impute silently")
    report.warn(source)
    return df, report


@dataclass
class Split:
    values: torch.Tensor  # [T, C] float32, scaled
    marks: torch.Tensor | None  # [T, M] calendar features or None (no date column)
    dates: pd.DatetimeIndex | None = None  # [T] the rows' dates (a served model's input example)


@dataclass
class ForecastData:
    task = "forecast"

    name: str
    columns: list[str]
    seq_len: int
    pred_len: int
    splits: dict[str, Split]
    mean: np.ndarray  # scaler fitted on the training rows
    std: np.ndarray
    freq: str | None
    source: str
    sha256: str | None
    hygiene: Hygiene = field(default_factory=Hygiene)

    @property
    def dims(self) -> Dims:
        marks = self.splits["train"].marks
        return Dims(seq_len=self.seq_len, n_channels=len(self.columns), pred_len=self.pred_len,
                    n_marks=0 if marks is None else marks.shape[1])

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
               stride: int = 1) -> "WindowLoader":
        return WindowLoader(self.splits[split], self.seq_len, self.pred_len, batch_size, shuffle, seed, stride)

    def split_array(self, split: str) -> np.ndarray:
        """The rows of a split (scaled), as logged with ``mlflow.log_input``."""
        return self.splits[split].values.numpy()

    def meta(self) -> dict[str, object]:
        """What a registered model needs to know about its data (serving rescales with it)."""
        return {"dataset": self.name, "columns": self.columns, "freq": self.freq,
                "scaler": {"mean": self.mean.tolist(), "std": self.std.tolist()}}

    def describe(self) -> dict[str, object]:
        out = {"dataset": self.name, "n_channels": len(self.columns), "freq": self.freq or "none",
               "source": self.source, "sha256": self.sha256 or "n/a"}
        for s in SPLIT_NAMES:
            out[f"n_windows_{s}"] = self.loader(s, 1).n_windows
        return out


class WindowLoader:
    """Batches of sliding windows cut by indexing (no per-item Python collate).

    Yields dicts with ``x`` [B, L, C], ``y`` [B, H, C], ``INDEX`` (each window's start row)
    and, when dates exist, ``x_mark`` [B, L, M], ``y_mark`` [B, H, M]. Shuffling uses its own seeded generator,
    re-seeded per epoch, so runs with the same seed see the same batches. Never drops
    the last partial batch.
    """

    def __init__(self, split: Split, seq_len: int, pred_len: int, batch_size: int,
                 shuffle: bool, seed: int, stride: int = 1):
        self.split, self.L, self.H, self.stride = split, seq_len, pred_len, stride
        # windows start every ``stride`` rows (1: every window; CondTSF's code trains on stride 12)
        self.n_windows = -(-(split.values.shape[0] - seq_len - pred_len + 1) // stride)
        self.order = EpochOrder(self.n_windows, batch_size, shuffle, seed)
        self._x_off = torch.arange(seq_len)
        self._y_off = torch.arange(seq_len, seq_len + pred_len)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        v, m = self.split.values, self.split.marks
        for idx in self.order:
            idx = idx * self.stride if self.stride > 1 else idx
            start = idx[:, None]
            xi, yi = start + self._x_off, start + self._y_off
            batch = {"x": v[xi], "y": v[yi], INDEX: idx}
            if m is not None:
                batch["x_mark"], batch["y_mark"] = m[xi], m[yi]
            yield batch


def load_frame(cfg: DataConfig) -> tuple[str, pd.DataFrame, Hygiene, str, str | None, str | None]:
    """(name, frame, hygiene report, split rule, source, sha256) for a config: a file, a catalog
    name or 'synthetic'."""
    if frames.is_frame(cfg.data_path):  # the API's data=df
        df, report = check_frame(frames.get(cfg.data_path), f"DataFrame {cfg.data_path}", cfg.duplicates)
        return cfg.label, df, report, "ratio", "pandas.DataFrame", frames.digest(frames.get(cfg.data_path))
    if cfg.data_path:
        path = Path(cfg.data_path).expanduser()
        spec = CATALOG.get(cfg.dataset) if cfg.dataset in CATALOG else None
        df, report = read_csv(path, cfg.duplicates)
        return cfg.label, df, report, (spec.split if spec else "ratio"), str(path), sha256_of(path)
    if cfg.dataset == "synthetic":
        df, report = check_frame(make_synthetic(), "synthetic", cfg.duplicates)
        return "synthetic", df, report, "ratio", "tdml.data.synthetic", None
    if cfg.dataset not in CATALOG:
        raise DataError(f"unknown dataset {cfg.dataset!r}; valid datasets: synthetic, "
                        f"{', '.join(CATALOG.names())} (or pass --data-path to any CSV)")
    spec = CATALOG.get(cfg.dataset)
    path = resolve(spec)
    df, report = read_csv(path, cfg.duplicates)
    return spec.name, df, report, spec.split, str(path), sha256_of(path)


def load_forecast_data(cfg: DataConfig) -> ForecastData:
    name, df, report, split_rule, source, sha = load_frame(cfg)
    split_fn = SPLITS.get(cfg.split or split_rule)
    values_df = df.drop(columns=["date"], errors="ignore")
    values = values_df.to_numpy(dtype=np.float64)
    n_rows = len(values)
    L, H = cfg.seq_len or DEFAULT_SEQ_LEN, cfg.pred_len or DEFAULT_PRED_LEN
    borders = split_fn(n_rows, L)
    for s, (a, b) in borders.items():
        if a < 0 or b > n_rows or b - a < L + H:
            raise DataError(
                f"{source}: too few rows for seq_len + pred_len = {L} + {H}: the {s!r} split "
                f"(rule {cfg.split or split_rule!r}) spans rows [{a}, {b}) of {n_rows}, "
                f"needs at least {L + H} rows; use a longer file or a smaller seq_len/pred_len"
            )
    tr_a, tr_b = borders["train"]
    mean = values[tr_a:tr_b].mean(axis=0)
    std = values[tr_a:tr_b].std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)  # a constant training column stays finite
    scaled = ((values - mean) / std).astype(np.float32)
    freq, marks, dates = None, None, None
    if "date" in df.columns:
        dates = pd.DatetimeIndex(df["date"])
        freq = infer_freq(dates)
        marks = time_features(dates, freq)
    splits = {
        s: Split(torch.from_numpy(scaled[a:b].copy()),
                 None if marks is None else torch.from_numpy(marks[a:b].copy()),
                 None if dates is None else dates[a:b])
        for s, (a, b) in borders.items()
    }
    return ForecastData(name, list(values_df.columns), L, H, splits, mean, std, freq, source, sha, report)
