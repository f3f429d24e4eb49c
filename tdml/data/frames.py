"""In-memory DataFrames as datasets (the Python API's ``data=df``).

A frame is registered under ``frame:<digest>`` (a content hash: the same data gets the same
name in any process) and a run's ``data.data_path`` holds that name, so its config, params and
registered model say which data it was. The frame itself lives only in this process: a later
process passes it again (``tdml.distill(teacher=..., data=df)``).
"""

from __future__ import annotations

import hashlib

import pandas as pd

from tdml.errors import DataError

PREFIX = "frame:"
_FRAMES: dict[str, pd.DataFrame] = {}


def digest(df: pd.DataFrame) -> str:
    """sha256 of the frame's column names and values (row order included, index ignored)."""
    h = hashlib.sha256("\x1f".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def register(df: pd.DataFrame) -> str:
    """The ``frame:<digest>`` name of ``df`` (a copy is kept: later edits do not change the run)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, a CSV path or a dataset name, got {type(df).__name__}")
    name = PREFIX + digest(df)[:16]
    _FRAMES.setdefault(name, df.copy())
    return name


def is_frame(path: str | None) -> bool:
    return bool(path) and str(path).startswith(PREFIX)


def get(name: str) -> pd.DataFrame:
    if name not in _FRAMES:
        raise DataError(f"data {name!r} is an in-memory DataFrame of another process (a run trained on it "
                        f"records only its digest); pass the same DataFrame again as data=")
    return _FRAMES[name]
