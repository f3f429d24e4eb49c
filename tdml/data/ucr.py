"""UCR/UEA classification data (docs/methods.md §2.1): ``dataset="ucr:<Name>"``.

Files: ``<TDML_DATA_DIR>/ucr/<Name>/<Name>_{TRAIN,TEST}.ts`` (the sktime/UEA ``.ts`` format)
or ``.tsv`` (UCR 2018: label in the first column, tab separated). Every series is resampled
to ``length`` steps by linear interpolation, then z-normalised per series and channel.
A stratified, seeded ``val_fraction`` of train is held out for validation; the test split is
the archive's own. Labels map to 0..K-1 in the sorted order of the training labels.

The validation split is a data setting (``split_seed``), not the training seed: teacher and
student runs of one dataset must hold out the same series, or the student's validation set
would contain series the teacher trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdml.data.batching import INDEX, EpochOrder
from tdml.data.download import data_dir
from tdml.data.ts_files import RawSeries, read_series_file, read_ts, read_tsv  # noqa: F401 (read_*: this module's API)
from tdml.errors import DataError
from tdml.contracts import Dims

PREFIX = "ucr:"
SPLIT_NAMES = ("train", "val", "test")


# --------------------------------------------------------------------------- preprocessing


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """``[C, n]`` -> ``[C, length]`` by linear interpolation on a common [0, 1] grid."""
    n = x.shape[1]
    if n == length:
        return x.copy()
    if n == 1:
        return np.repeat(x, length, axis=1)
    src = np.linspace(0.0, 1.0, n)
    dst = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(dst, src, c) for c in x])


def znormalise(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Per channel over time; a constant channel becomes zeros rather than NaN."""
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return (x - mean) / np.where(std < eps, 1.0, std)


def _sort_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): ``ceil(fraction * N)`` series held out, in proportion to class size.

    A class with a single training series always stays in train (a class the model never sees
    cannot be learned; validation metrics skip classes absent from the split). Every class
    keeps at least one training series. Per-class counts use largest remainders, ties broken
    by class order, so the split depends only on the labels and the seed.
    """
    classes, counts = np.unique(labels, return_counts=True)
    room = counts - 1  # at most n_c - 1 held out per class
    n_val = min(math.ceil(fraction * len(labels)), int(room.sum()))
    if n_val < 1:
        raise DataError(f"cannot hold out a validation split: {len(labels)} training series and every "
                        f"class has a single one; use a dataset with more training series")
    eligible = room > 0
    quota = np.where(eligible, n_val * counts / counts[eligible].sum(), 0.0)
    take = np.minimum(np.floor(quota).astype(int), room)
    while take.sum() < n_val:
        gap = np.where(take < room, quota - take, -np.inf)
        take[int(np.argmax(gap))] += 1
    rng = np.random.default_rng(seed)
    val = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


# --------------------------------------------------------------------------- dataset


@dataclass
class LabeledSplit:
    x: torch.Tensor  # [N, L, C] float32
    y: torch.Tensor  # [N] int64 in 0..K-1

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class ClassificationData:
    task = "classify"

    name: str
    classes: list[str]  # raw label of class index k
    splits: dict[str, LabeledSplit]
    source: str
    original_length: int  # longest series in the files, before resampling

    @property
    def dims(self) -> Dims:
        x = self.splits["train"].x
        return Dims(seq_len=x.shape[1], n_channels=x.shape[2], n_classes=len(self.classes))

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0) -> "SampleLoader":
        return SampleLoader(self.splits[split], batch_size, shuffle, seed)

    def split_array(self, split: str):
        """The series of a split [N, L, C], as logged with ``mlflow.log_input``."""
        return self.splits[split].x.numpy()

    def meta(self) -> dict[str, object]:
        """What a registered classifier needs to know about its data."""
        return {"dataset": self.name, "classes": self.classes}

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"dataset": self.name, "n_classes": len(self.classes),
                                  "seq_len": self.dims.seq_len, "n_channels": self.dims.n_channels,
                                  "original_length": self.original_length, "source": self.source}
        for s in SPLIT_NAMES:
            out[f"n_samples_{s}"] = len(self.splits[s])
        return out


class SampleLoader:
    """Batches ``{"x": [B, L, C], "y": [B]}`` by indexing; same conventions as WindowLoader:
    a seeded generator re-seeded per epoch when shuffling, the last partial batch kept."""

    def __init__(self, split: LabeledSplit, batch_size: int, shuffle: bool, seed: int):
        self.split = split
        self.n_samples = len(split)
        self.order = EpochOrder(self.n_samples, batch_size, shuffle, seed)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        for idx in self.order:
            yield {"x": self.split.x[idx], "y": self.split.y[idx], INDEX: idx}


def is_ucr(dataset: str) -> bool:
    return dataset.lower().startswith(PREFIX)


def find_files(name: str, directory: Path | None = None) -> tuple[str, Path, Path]:
    """(canonical name, train file, test file); ``.ts`` preferred over ``.tsv``.

    The folder name matches case-insensitively, so ``ucr:trace`` finds ``Trace/``.
    """
    root = (directory or data_dir()) / "ucr"
    available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    match = name if name in available else next((a for a in available if a.lower() == name.lower()), None)
    if match is None:
        listing = ", ".join(available) if available else "none"
        raise DataError(f"UCR dataset {name!r} not found in {root} (available: {listing}); put "
                        f"<Name>/<Name>_TRAIN.ts and <Name>_TEST.ts there (from "
                        f"https://www.timeseriesclassification.com) or set TDML_DATA_DIR")
    folder = root / match
    for ext in (".ts", ".tsv"):
        train, test = folder / f"{match}_TRAIN{ext}", folder / f"{match}_TEST{ext}"
        if train.is_file() and test.is_file():
            return match, train, test
    raise DataError(f"{folder} needs {match}_TRAIN.ts and {match}_TEST.ts (or the .tsv pair); "
                    f"found: {', '.join(sorted(p.name for p in folder.iterdir())) or 'nothing'}")


def _to_tensor(raw: RawSeries, length: int) -> torch.Tensor:
    x = np.stack([znormalise(resample(s, length)).T for s in raw.series])  # [N, L, C]
    return torch.from_numpy(x.astype(np.float32))


def load_ucr(dataset: str, length: int = 100, val_fraction: float = 0.2, split_seed: int = 0,
             directory: Path | None = None) -> ClassificationData:
    """Load ``ucr:<Name>`` (or a bare ``<Name>``) from ``<directory or TDML_DATA_DIR>/ucr``."""
    if length < 2:
        raise DataError(f"resample length must be >= 2, got {length}")
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    name = dataset[len(PREFIX):] if is_ucr(dataset) else dataset
    name, train_path, test_path = find_files(name, directory)
    train, test = read_series_file(train_path), read_series_file(test_path)
    if train.n_channels != test.n_channels:
        raise DataError(f"{train_path.name} has {train.n_channels} channel(s), {test_path.name} "
                        f"has {test.n_channels}; both splits need the same channels")
    classes = sorted(set(train.labels), key=_sort_key)
    if len(classes) < 2:
        raise DataError(f"{train.source}: a single class ({classes[0]!r}); classification needs at least two")
    missing = sorted(set(test.labels) - set(classes), key=_sort_key)
    if missing:
        raise DataError(f"{test.source}: test label(s) {', '.join(map(repr, missing))} never occur in the "
                        f"training file, so no model could predict them; check that TRAIN/TEST belong together")
    index = {c: k for k, c in enumerate(classes)}
    y_train = np.array([index[c] for c in train.labels], dtype=np.int64)
    y_test = np.array([index[c] for c in test.labels], dtype=np.int64)
    x_train, x_test = _to_tensor(train, length), _to_tensor(test, length)
    tr, va = stratified_split(y_train, val_fraction, split_seed)
    yt = torch.from_numpy(y_train)
    splits = {
        "train": LabeledSplit(x_train[tr], yt[tr]),
        "val": LabeledSplit(x_train[va], yt[va]),
        "test": LabeledSplit(x_test, torch.from_numpy(y_test)),
    }
    original = max(s.shape[1] for s in train.series + test.series)
    return ClassificationData(name, classes, splits, str(train_path.parent), original)
