"""Calendar features from the date column ("timeF" encoding, each in [-0.5, 0.5]).

Finer sampling adds finer features: sub-hourly data gets minute-of-hour on top of the
hourly set (hour, weekday, day of month, day of year); daily data drops the hour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def time_features(dates: pd.DatetimeIndex, freq: str) -> np.ndarray:
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    cols = []
    if step < pd.Timedelta(hours=1):
        cols.append(dates.minute / 59.0 - 0.5)
    if step < pd.Timedelta(days=1):
        cols.append(dates.hour / 23.0 - 0.5)
    cols += [
        dates.day_of_week / 6.0 - 0.5,
        (dates.day - 1) / 30.0 - 0.5,
        (dates.day_of_year - 1) / 365.0 - 0.5,
    ]
    return np.stack([np.asarray(c, dtype=np.float32) for c in cols], axis=1)


def infer_freq(dates: pd.DatetimeIndex) -> str:
    """The most common step between consecutive dates, as a pandas frequency string."""
    if len(dates) < 2:
        return "h"
    step = pd.Series(dates[1:] - dates[:-1]).mode().iloc[0]
    return pd.tseries.frequencies.to_offset(step).freqstr
