"""Datasets: catalog + download, CSV checks, splits, windows, and the synthetic default.

``load_data`` picks the loader from the dataset name's prefix (``ucr:Trace`` -> 'ucr');
names without a prefix are forecasting datasets. Every loader returns an object with
``task``, ``name``, ``dims``, ``loader(split, batch_size, shuffle, seed)``, ``meta()`` and
``describe()``.
"""

from __future__ import annotations

from typing import Any, Callable

from tdml.config import DataConfig
from tdml.data.catalog import CATALOG, DatasetSpec  # noqa: F401
from tdml.data.forecast import ForecastData, WindowLoader, load_forecast_data, read_csv  # noqa: F401
from tdml.registry import Registry

# Kinds defined in higher layers register themselves ("runs": tdml condense's synthetic sets);
# they are named here, not imported.
LOADERS: Registry[Callable[[DataConfig], Any]] = Registry("dataset kind", plugins=("tdml.condensation.dataset",))
LOADERS.register("forecast")(load_forecast_data)


@LOADERS.register("ucr")
def _load_ucr(cfg: DataConfig):
    from tdml.data.ucr import load_ucr

    return load_ucr(cfg.dataset, length=cfg.seq_len or 100)


def load_data(cfg: DataConfig):
    kind = cfg.dataset.split(":", 1)[0] if ":" in cfg.dataset else "forecast"
    return LOADERS.get(kind)(cfg)
