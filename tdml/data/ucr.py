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
from tdml.errors import DataError
from tdml.models.base import Dims

PREFIX = "ucr:"
SPLIT_NAMES = ("train", "val", "test")


# --------------------------------------------------------------------------- parsing


@dataclass
class RawSeries:
    """One file as read: ``series[i]`` is ``[C, n_i]`` float64, ``labels[i]`` its raw label."""

    series: list[np.ndarray]
    labels: list[str]
    source: str

    @property
    def n_channels(self) -> int:
        return self.series[0].shape[0]


def _floats(text: str, where: str) -> np.ndarray:
    parts = text.split(",")
    if any(p.strip() == "?" for p in parts):
        raise DataError(f"{where}: missing values ('?') are not supported; fill them in the file first")
    try:
        values = np.asarray(parts, dtype=np.float64)
    except ValueError:
        bad = next(p for p in parts if not _is_float(p))
        raise DataError(f"{where}: {bad.strip()!r} is not a number") from None
    if not np.isfinite(values).all():
        raise DataError(f"{where}: NaN or infinite values are not supported; fill them in the file first")
    return values


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_ts(path: str | Path) -> RawSeries:
    """Parse a ``.ts`` file: ``#`` comments, ``@key value`` header lines, then ``@data``.

    A data line is ``dim1:dim2:...:label``, each dimension comma-separated. Checks: class
    labels declared (``@classLabel true ...``) and every label among them; no time stamps;
    the same number of dimensions everywhere (and equal to ``@dimensions`` if given); the
    dimensions of one series equally long; with ``@equalLength true`` all series equally
    long (and equal to ``@seriesLength`` if given).
    """
    path = Path(path)
    src = str(path)
    header: dict[str, list[str]] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as f:  # comments may hold any bytes
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{src}, line {lineno}"
            if not in_data:
                if not line.startswith("@"):
                    raise DataError(f"{where}: expected a '@key value' header line or '@data' before "
                                    f"the series, got {line[:40]!r}")
                key, *values = line[1:].split()
                key = key.lower()
                if key == "data":
                    in_data = True
                    declared = _check_header(header, src)
                else:
                    header[key] = values
                continue
            *dims, label = line.split(":")
            if not dims:
                raise DataError(f"{where}: a series line must look like 'v1,v2,...:label' "
                                f"(dimensions separated by ':', the class label last)")
            label = label.strip()
            if label not in declared:
                raise DataError(f"{where}: class label {label!r} is not declared in @classLabel "
                                f"({' '.join(declared)})")
            chans = [_floats(d, where) for d in dims]
            if len({len(c) for c in chans}) > 1:
                raise DataError(f"{where}: the dimensions of one series have different lengths "
                                f"({', '.join(str(len(c)) for c in chans)}); tdml needs them equal")
            series.append(np.stack(chans))
            labels.append(label)
    if not in_data:
        raise DataError(f"{src}: no '@data' line; this is not a .ts file (see "
                        f"https://www.timeseriesclassification.com for the format)")
    if not series:
        raise DataError(f"{src}: no series after '@data'")
    _check_shapes(series, header, src)
    return RawSeries(series, labels, src)


def _check_header(header: dict[str, list[str]], src: str) -> list[str]:
    """The declared class labels; fails on unsupported or missing header entries."""
    if header.get("timestamps", ["false"])[0].lower() == "true":
        raise DataError(f"{src}: '@timeStamps true' is not supported; export the series without time stamps")
    decl = header.get("classlabel")
    if not decl or decl[0].lower() != "true" or len(decl) < 2:
        raise DataError(f"{src}: no class labels declared; a classification file needs "
                        f"'@classLabel true <label> <label> ...' before '@data'")
    return decl[1:]


def _check_shapes(series: list[np.ndarray], header: dict[str, list[str]], src: str) -> None:
    n_dims = {s.shape[0] for s in series}
    if len(n_dims) > 1:
        raise DataError(f"{src}: series have different numbers of dimensions "
                        f"({', '.join(map(str, sorted(n_dims)))}); every series needs the same channels")
    if "dimensions" in header:
        expected = _header_int(header, "dimensions", src)
        if expected != series[0].shape[0]:
            raise DataError(f"{src}: @dimensions says {expected}, the series have {series[0].shape[0]}")
    if header.get("equallength", ["false"])[0].lower() == "true":
        lengths = sorted({s.shape[1] for s in series})
        if len(lengths) > 1:
            first_bad = next(i for i, s in enumerate(series) if s.shape[1] != series[0].shape[1])
            raise DataError(f"{src}: ragged series although '@equalLength true': lengths "
                            f"{', '.join(map(str, lengths[:5]))} (series {first_bad + 1} differs from the "
                            f"first); fix the file or declare '@equalLength false'")
        if "serieslength" in header:
            expected = _header_int(header, "serieslength", src)
            if expected != lengths[0]:
                raise DataError(f"{src}: @seriesLength says {expected}, the series have {lengths[0]} values")


def _header_int(header: dict[str, list[str]], key: str, src: str) -> int:
    try:
        return int(header[key][0])
    except (ValueError, IndexError):
        raise DataError(f"{src}: @{key} must be an integer, got {' '.join(header[key])!r}") from None


def read_tsv(path: str | Path) -> RawSeries:
    """Parse a UCR 2018 ``.tsv``: one univariate series per line, ``label<TAB>v1<TAB>v2...``.

    Variable-length datasets pad with trailing ``NaN``; those are trimmed. A NaN inside a
    series, a non-numeric value, or lines with different numbers of columns fail.
    """
    path = Path(path)
    src = str(path)
    series: list[np.ndarray] = []
    labels: list[str] = []
    n_cols = None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            where = f"{src}, line {lineno}"
            label, *cells = line.split("\t")
            if not cells:
                raise DataError(f"{where}: expected 'label<TAB>v1<TAB>v2...', found no tab-separated values")
            if n_cols is None:
                n_cols = len(cells)
            elif len(cells) != n_cols:
                raise DataError(f"{where}: {len(cells)} values, earlier lines have {n_cols}; ragged rows "
                                f"(UCR pads shorter series with trailing NaN)")
            try:
                values = np.asarray(cells, dtype=np.float64)
            except ValueError:
                bad = next(c for c in cells if not _is_float(c))
                raise DataError(f"{where}: {bad.strip()!r} is not a number") from None
            nan = np.isnan(values)
            n = len(values) - int(np.argmax(~nan[::-1])) if not nan.all() else 0
            if n == 0 or nan[:n].any() or not np.isfinite(values[:n]).all():
                raise DataError(f"{where}: NaN/inf inside the series (only trailing NaN padding is allowed)")
            series.append(values[None, :n])
            labels.append(_label_text(label.strip()))
    if not series:
        raise DataError(f"{src}: no series in the file")
    return RawSeries(series, labels, src)


def _label_text(label: str) -> str:
    """'1.0' and '1' name the same class in UCR tsv files; keep the shorter form."""
    try:
        v = float(label)
    except ValueError:
        return label
    return str(int(v)) if v.is_integer() else label


def read_series_file(path: str | Path) -> RawSeries:
    p = Path(path)
    if p.suffix == ".ts":
        return read_ts(p)
    if p.suffix == ".tsv":
        return read_tsv(p)
    raise DataError(f"{p}: unknown extension {p.suffix!r}; expected .ts or .tsv")


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
