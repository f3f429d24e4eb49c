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
from tdml.data.forecast import (DEFAULT_PRED_LEN, DEFAULT_SEQ_LEN, ForecastData, WindowLoader,  # noqa: F401
                                load_forecast_data, read_csv)
from tdml.registry import Registry

# Kinds defined in higher layers register themselves ("runs": tdml condense's synthetic sets);
# they are named here, not imported.
LOADERS: Registry[Callable[[DataConfig], Any]] = Registry("dataset kind", plugins=("tdml.condensation.dataset",))
LOADERS.register("forecast")(load_forecast_data)

# The window a dataset kind uses where DataConfig leaves seq_len / pred_len at 0 ("default"):
# the resolver fills them in (tdml.resolve), so a run's logged config holds the real values. A
# kind absent here (a condensed set: runs:/...) takes its window from the data itself.
WINDOW_DEFAULTS: dict[str, dict[str, int]] = {"forecast": {"seq_len": DEFAULT_SEQ_LEN, "pred_len": DEFAULT_PRED_LEN},
                                              "ucr": {"seq_len": 100}}  # UCR: resample length


def kind_of(dataset: str) -> str:
    return dataset.split(":", 1)[0] if ":" in dataset else "forecast"


@LOADERS.register("ucr")
def _load_ucr(cfg: DataConfig):
    from tdml.data.ucr import load_ucr

    return load_ucr(cfg.dataset, length=cfg.seq_len or WINDOW_DEFAULTS["ucr"]["seq_len"])


def load_data(cfg: DataConfig):
    return LOADERS.get(kind_of(cfg.dataset))(cfg)
