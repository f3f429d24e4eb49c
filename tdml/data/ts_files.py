"""UCR/UEA classification files as read, before any preprocessing: the sktime/UEA ``.ts``
format and the UCR 2018 ``.tsv`` format, with errors that name the file, the line and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdml.errors import DataError


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
