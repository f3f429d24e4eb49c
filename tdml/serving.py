"""MLflow pyfunc loader for tdml models: rebuilds the architecture from ``config.json`` and
loads ``weights.safetensors`` -- no pickled code anywhere.

``mlflow.pyfunc.load_model("models:/<name>@<alias>")`` returns a predictor that takes raw
(unscaled) lookback windows, a float32 array [B, L, C] (one window: [1, L, C]), and returns
forecasts [B, H, C] in the same units (a classifier: logits [B, K]). The logged signature is
that tensor, ``(-1, L, C)`` float32: MLflow refuses another rank, window length, channel count
or dtype before the model runs, naming the expected shape (over HTTP: a 400); NaNs are refused
here, with the same expected shape.

A model that reads calendar features (it was trained on a file with a ``date`` column and
declares ``uses_time_features``) needs the dates too: its signature is column-based, a
``date`` column (ISO strings or datetimes) and the training columns (double). Pass one window
as a DataFrame (its last L rows are used; the H future dates continue at the training
frequency) and get [H, C]. Without dates such a model would silently see inputs it was never
trained on, so a bare array or a frame without ``date`` is refused, naming the column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType

CONFIG_FILE = "config.json"


class ServingInputError(MlflowException, ValueError):
    """Bad input to a served model: MLflow's scoring server answers 400 with this message
    (a plain exception becomes a generic "unexpected error")."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
WEIGHTS_FILE = "weights.safetensors"


def signature(model, meta: dict[str, Any]) -> ModelSignature:
    """What the served model accepts and returns (MLflow enforces the inputs before predict)."""
    d = model.dims
    out = (d.pred_len, d.n_channels) if model.task == "forecast" else (d.n_classes,)
    f32 = np.dtype(np.float32)
    if model.reads_marks():
        # 'date' of any type: ISO strings (JSON, CSV) or datetimes, parsed in _dated_window
        return ModelSignature(Schema([ColSpec(AnyType(), "date"), *(ColSpec("double", str(c)) for c in meta["columns"])]),
                              Schema([TensorSpec(f32, out)]))
    return ModelSignature(Schema([TensorSpec(f32, (-1, d.seq_len, d.n_channels))]), Schema([TensorSpec(f32, (-1, *out))]))


def save_bundle(model: torch.nn.Module, meta: dict[str, Any], directory: Path) -> Path:
    """Write config (architecture + run metadata) and safetensors weights to ``directory``."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps({"model": model.config(), **meta}, indent=2))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    return directory


def load_bundle(directory: str | Path, device: str | torch.device = "cpu"):
    """(model, meta) from a bundle directory; the model is the tdml class, in eval mode."""
    from safetensors.torch import load_file

    from tdml.models import model_from_config

    directory = Path(directory)
    meta = json.loads((directory / CONFIG_FILE).read_text())
    model = model_from_config(meta["model"])
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE), device=str(device)))
    return model.to(device).eval(), meta


class _Predictor:
    def __init__(self, model, meta):
        self.model, self.meta = model, meta
        scaler = meta.get("scaler") or {}
        self.mean = np.asarray(scaler.get("mean", 0.0), dtype=np.float32)
        self.std = np.asarray(scaler.get("std", 1.0), dtype=np.float32)

    def predict(self, model_input, params=None):
        x, marks = self._inputs(model_input)  # marks: [] or [x_mark, y_mark]
        self._check(x)
        single = x.ndim == 2
        if single:
            x, marks = x[None], [m[None] for m in marks]
        x = (x - self.mean) / self.std
        with torch.no_grad():
            y = self.model(torch.from_numpy(x), *map(torch.from_numpy, marks)).numpy()
        y = y * self.std + self.mean if y.ndim == 3 else y
        return y[0] if single else y

    def _check(self, x: np.ndarray) -> None:
        """Shape and values of a raw window, with what was expected, before the model sees it.
        (MLflow checks a signature's shape first; versions logged without one, and the
        single-window [L, C] form they accept, rely on this check and ``_inputs``.)"""
        dims = self.model.dims
        expected = f"[B, {dims.seq_len}, {dims.n_channels}]"
        if x.ndim not in (2, 3) or tuple(x.shape[-2:]) != (dims.seq_len, dims.n_channels):
            raise ServingInputError(f"input has shape {list(x.shape)}; this model expects raw lookback windows "
                                    f"{expected}: L = seq_len = {dims.seq_len} rows of C = {dims.n_channels} "
                                    f"channels {self.meta.get('columns') or ''}".rstrip())
        if not np.isfinite(x).all():
            raise ServingInputError(f"input has {int((~np.isfinite(x)).sum())} NaN or infinite value(s); "
                                    f"fill them before forecasting (expected finite windows {expected})")

    def _inputs(self, model_input) -> tuple[np.ndarray, list[np.ndarray]]:
        """Values [.., L, C] and, when the input has a ``date`` column, the window's marks."""
        reads_marks = self.model.reads_marks()
        if isinstance(model_input, pd.DataFrame) and "date" in model_input.columns:
            return self._dated_window(model_input) if reads_marks else (
                model_input.drop(columns="date").to_numpy(np.float32), [])
        if reads_marks:
            raise ServingInputError(
                f"this model reads calendar features (it was trained on data with a 'date' column, "
                f"frequency {self.meta.get('freq')!r}); pass the lookback as a DataFrame with a 'date' "
                f"column and the columns {self.meta.get('columns')}, not a bare array")
        try:
            return np.asarray(model_input, dtype=np.float32), []
        except (ValueError, TypeError) as e:
            raise ServingInputError(f"input is not numeric windows ({e})") from None

    def _dated_window(self, df: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
        from tdml.data.timefeatures import time_features

        dims, columns, freq = self.model.dims, self.meta.get("columns") or [], self.meta.get("freq")
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ServingInputError(f"input lacks the training columns {missing}; expected 'date' + {columns}")
        if len(df) < dims.seq_len:
            raise ServingInputError(f"input has {len(df)} rows; this model needs the last {dims.seq_len} (seq_len)")
        df = df.iloc[len(df) - dims.seq_len:]
        try:
            dates = pd.DatetimeIndex(pd.to_datetime(df["date"]))
        except (ValueError, TypeError) as e:
            raise ServingInputError(f"the 'date' column has values that are not dates ({e})") from None
        future = pd.date_range(dates[-1], periods=dims.pred_len + 1, freq=freq)[1:]
        return df[columns].to_numpy(np.float32), [time_features(dates, freq), time_features(future, freq)]


def _load_pyfunc(data_path: str):
    """Entry point MLflow calls (``loader_module: tdml.serving``)."""
    return _Predictor(*load_bundle(data_path))
