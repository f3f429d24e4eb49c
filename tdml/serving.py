"""MLflow pyfunc loader for tdml models: rebuilds the architecture from ``config.json`` and
loads ``weights.safetensors`` -- no pickled code anywhere.

``mlflow.pyfunc.load_model("models:/<name>@<alias>")`` returns a predictor that takes raw
(unscaled) lookback windows, shaped [B, L, C] or [L, C] (ndarray or DataFrame with the
training columns), and returns forecasts in the same units.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


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
        x = np.asarray(model_input, dtype=np.float32)
        single = x.ndim == 2
        if single:
            x = x[None]
        x = (x - self.mean) / self.std
        with torch.no_grad():
            y = self.model(torch.from_numpy(x)).numpy()
        y = y * self.std + self.mean if y.ndim == 3 else y
        return y[0] if single else y


def _load_pyfunc(data_path: str):
    """Entry point MLflow calls (``loader_module: tdml.serving``)."""
    return _Predictor(*load_bundle(data_path))
