"""The embedded default dataset: deterministic multichannel series shaped like real ones.

Hourly rows. What real multivariate data (load, weather, traffic) has and the series here
reproduce, each as a separate ingredient:

- several periods: daily (24) and weekly (168) cycles shared by all channels with their own
  phases, plus a channel-specific shorter period;
- cross-channel coupling: a persistent latent driver (AR(1), the "weather" behind a load)
  reaches the channels with increasing delays, so one channel's past tells another's future
  -- information a channel-independent model cannot use and a cross-variate teacher can;
- regime shifts: a hidden state switching every few hundred rows changes the daily amplitude,
  the level and the noise;
- heteroscedastic, heavy-tailed noise: larger during the daily peak and in the noisy regime,
  Student-t distributed, plus rare isolated spikes (sensor glitches, outages);
- a slow trend.

Same arguments, same data, on every machine. ``freq`` and ``n_channels`` shape it like the
wide benchmark sets (``WIDE_SHAPES``); the periods are in days and weeks whatever the
sampling interval, and the driver's delay repeats every ``LAG_CYCLE`` channels so that
hundreds of channels do not stretch it over months.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHORT_PERIODS = (12, 8, 6, 48, 36, 16, 72, 4)
NOISE = 0.15  # base observation-noise scale (before the daily and regime factors)
SPIKE_RATE = 0.005  # isolated glitches per row and channel
LAG_STEP = 8  # channel c sees the latent driver (c % LAG_CYCLE) * LAG_STEP hours late
LAG_CYCLE = 24
# rows, channels and sampling interval of TimeDistill's wide datasets (Time-Series-Library files)
WIDE_SHAPES = {"etth1": (17_420, 7, "h"), "solar": (52_560, 137, "10min"),
               "electricity": (26_304, 321, "h"), "traffic": (17_544, 862, "h")}
# regime: (daily amplitude factor, level shift, noise factor)
REGIMES = ((1.0, 0.0, 1.0), (1.5, 0.6, 1.6), (0.6, -0.4, 0.8))


def _regimes(n_rows: int, rng: np.random.Generator, mean_length: int = 300) -> np.ndarray:
    """A hidden regime index per row, switching after geometric durations."""
    out = np.empty(n_rows, dtype=int)
    i, state = 0, 0
    while i < n_rows:
        length = int(rng.geometric(1 / mean_length))
        out[i:i + length] = state
        i += length
        state = int(rng.choice([s for s in range(len(REGIMES)) if s != state]))
    return out


def _ar1(n_rows: int, rng: np.random.Generator, phi: float = 0.97) -> np.ndarray:
    """Unit-variance AR(1) series: persistent, yet not predictable far ahead from itself."""
    e = rng.standard_normal(n_rows) * np.sqrt(1 - phi**2)
    g = np.empty(n_rows)
    g[0] = rng.standard_normal()
    for i in range(1, n_rows):
        g[i] = phi * g[i - 1] + e[i]
    return g


def make_synthetic(n_rows: int = 8000, n_channels: int = 5, seed: int = 7, noise: float = NOISE,
                   freq: str = "h") -> pd.DataFrame:
    """Hourly by default; ``freq`` (a pandas offset such as ``10min``) keeps every period in hours."""
    rng = np.random.default_rng(seed)
    per_hour = pd.Timedelta("1h") / pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    step = round(LAG_STEP * per_hour)
    max_lag = step * min(n_channels - 1, LAG_CYCLE - 1)
    t = np.arange(n_rows, dtype=np.float64) / per_hour  # in hours
    regime = np.array(REGIMES)[_regimes(n_rows, rng, round(300 * per_hour))]  # [n_rows, 3]
    driver = _ar1(n_rows + max_lag, rng, 0.97 ** (1 / per_hour))
    day = np.sin(2 * np.pi * t / 24)
    cols = {}
    for c in range(n_channels):
        p = SHORT_PERIODS[c % len(SHORT_PERIODS)]
        phase = rng.uniform(0, 2 * np.pi, size=3)
        amp = rng.uniform(0.5, 1.5, size=3)
        lag = (c % LAG_CYCLE) * step
        lagged = driver[max_lag - lag: max_lag - lag + n_rows]
        noise_std = noise * (1 + 0.6 * (day > 0.5)) * regime[:, 2]
        series = (
            regime[:, 0] * amp[0] * np.sin(2 * np.pi * t / 24 + phase[0])
            + amp[1] * np.sin(2 * np.pi * t / 168 + phase[1])
            + 0.6 * amp[2] * np.sin(2 * np.pi * t / p + phase[2])
            + rng.uniform(0.8, 1.2) * lagged
            + regime[:, 1]
            + rng.uniform(-1, 1) * np.arange(n_rows) / n_rows  # slow trend
            + noise_std * rng.standard_t(3, n_rows) / np.sqrt(3)  # unit variance, heavy tails
            + (rng.random(n_rows) < SPIKE_RATE) * rng.choice([-1, 1], n_rows) * rng.uniform(2, 5, n_rows)
        )
        cols[f"ch{c}"] = series
    cols["OT"] = cols.pop(f"ch{n_channels - 1}")
    dates = pd.date_range("2020-01-01", periods=n_rows, freq=freq)
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d %H:%M:%S"), **cols})
