"""The embedded default dataset: deterministic multichannel series with known periods.

Hourly rows; each channel mixes daily (24), weekly (168) and a channel-specific shorter
period, a slow trend, a shared latent driver and Gaussian noise, so both the multi-scale
and the multi-period parts of TimeDistill have something to transfer. Same arguments,
same data, on every machine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHORT_PERIODS = (12, 8, 6, 48, 36, 16, 72, 4)


def make_synthetic(n_rows: int = 4000, n_channels: int = 5, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows, dtype=np.float64)
    driver = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168)
    cols = {}
    for c in range(n_channels):
        p = SHORT_PERIODS[c % len(SHORT_PERIODS)]
        phase = rng.uniform(0, 2 * np.pi, size=3)
        amp = rng.uniform(0.5, 1.5, size=3)
        series = (
            amp[0] * np.sin(2 * np.pi * t / 24 + phase[0])
            + amp[1] * np.sin(2 * np.pi * t / 168 + phase[1])
            + 0.6 * amp[2] * np.sin(2 * np.pi * t / p + phase[2])
            + 0.3 * (c + 1) * driver
            + rng.uniform(-1, 1) * t / n_rows  # slow trend
            + 0.25 * rng.standard_normal(n_rows)
        )
        cols[f"ch{c}"] = series
    cols["OT"] = cols.pop(f"ch{n_channels - 1}")
    dates = pd.date_range("2020-01-01", periods=n_rows, freq="h")
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d %H:%M:%S"), **cols})
