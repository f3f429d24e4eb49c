"""Real-world CSV hygiene: clean column names, a checked date column, and a report of what the
file does that a benchmark file should not (duplicated timestamps, gaps).

Files as archives distribute them are not clean: the long-term forecasting benchmark's
``weather.csv`` has U+FFFD in two header names (where ``²``/``µ`` were), a duplicated
timestamp and a 100-minute gap. tdml reports all of it (a warning naming the first few, run
tags with the counts) and changes the rows only when told to (``data.duplicates``).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tdml.errors import DataError

log = logging.getLogger(__name__)

# What to do with rows whose timestamp repeats the previous row's. "keep" is the benchmark
# convention (the published splits count every row of the file as distributed).
DUPLICATE_POLICIES = ("keep", "drop")
SHOWN = 3  # examples a warning names


@dataclass
class Hygiene:
    """What was found in (and done to) a frame; ``tags()`` go on the run."""

    renamed: dict[str, str] = field(default_factory=dict)  # original header -> clean name
    duplicates: list[str] = field(default_factory=list)  # every duplicated timestamp
    gaps: list[tuple[str, str]] = field(default_factory=list)  # (last before, first after) per gap
    step: str | None = None  # the usual interval the gaps are measured against
    dropped: int = 0  # rows removed by the duplicate policy

    def tags(self) -> dict[str, str]:
        return {"tdml.data.duplicate_timestamps": str(len(self.duplicates)),
                "tdml.data.gaps": str(len(self.gaps)),
                "tdml.data.renamed_columns": str(len(self.renamed)),
                "tdml.data.dropped_rows": str(self.dropped)}

    def warn(self, source: str) -> None:
        if self.renamed:
            log.warning("%s: %d column name(s) cleaned: %s", source, len(self.renamed),
                        "; ".join(f"{old!r} -> {new!r}" for old, new in self.renamed.items()))
        if self.duplicates:
            what = (f"dropped {self.dropped} row(s), keeping each timestamp's first row" if self.dropped
                    else "kept (data.duplicates=keep, the benchmark convention; data.duplicates=drop removes them)")
            log.warning("%s: %d duplicated timestamp(s), e.g. %s; %s", source, len(self.duplicates),
                        ", ".join(self.duplicates[:SHOWN]), what)
        if self.gaps:
            log.warning("%s: %d gap(s) longer than the usual %s interval, e.g. %s; windows span them "
                        "as they are (nothing is filled)", source, len(self.gaps), self.step,
                        ", ".join(f"{a} -> {b}" for a, b in self.gaps[:SHOWN]))


def clean_name(name: str) -> str:
    """A stable column name: NFC, no byte-order mark, U+FFFD -> '_', whitespace trimmed and
    collapsed. ``_`` keeps the name valid wherever MLflow puts it (metric keys, schemas)."""
    text = unicodedata.normalize("NFC", str(name)).replace("\ufeff", "").replace("\ufffd", "_")
    return re.sub(r"\s+", " ", text).strip()


def clean_columns(df: pd.DataFrame, source: str, report: Hygiene) -> pd.DataFrame:
    names = [clean_name(c) for c in df.columns]
    seen: dict[str, object] = {}
    for old, new in zip(df.columns, names):
        if new in seen:
            raise DataError(f"{source}: columns {seen[new]!r} and {old!r} both become {new!r} once their "
                            f"names are cleaned (whitespace, U+FFFD); rename one of them in the file")
        seen[new] = old
        if new != old:
            report.renamed[str(old)] = new
    return df.set_axis(names, axis=1) if report.renamed else df


def _line(i: int) -> str:
    return f"row {i} (line {i + 2} of the file)"  # line 1 is the header


def parse_dates(raw: pd.Series, source: str) -> pd.Series:
    """The ``date`` column as datetimes; the first value that is not a date is named."""
    dates = pd.to_datetime(raw, errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{source}: the 'date' column has {len(bad)} value(s) that are not dates; the first is "
                        f"{raw.iloc[i]!r} at {_line(i)}; fix or remove those rows")
    return dates


def check_order(df: pd.DataFrame, source: str, duplicates: str, report: Hygiene) -> pd.DataFrame:
    """Rows in time order (an error names the first row that goes back in time), duplicated
    timestamps and gaps reported, duplicates dropped when the policy says so."""
    if duplicates not in DUPLICATE_POLICIES:
        raise DataError(f"data.duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, got {duplicates!r}")
    dates = df["date"]
    step = dates.diff().to_numpy()[1:]
    back = np.flatnonzero(step < np.timedelta64(0))
    if len(back):
        i = int(back[0]) + 1
        raise DataError(f"{source}: the 'date' column is not in time order: {_line(i)} has {dates.iloc[i]}, "
                        f"earlier than {dates.iloc[i - 1]} in the row before; sort the file by date "
                        f"(df.sort_values('date')) if its rows belong in that order")
    repeat = np.flatnonzero(step == np.timedelta64(0)) + 1
    report.duplicates = [str(dates.iloc[i]) for i in repeat]
    positive = step[step > np.timedelta64(0)]
    if len(positive):
        usual = pd.Series(positive).mode().iloc[0]  # the file's interval: its most common step
        report.step = str(pd.Timedelta(usual))
        gap = np.flatnonzero(step > 1.5 * usual)  # 1.5x: months of 28-31 days are not gaps
        report.gaps = [(str(dates.iloc[i]), str(dates.iloc[i + 1])) for i in gap]
    if duplicates == "drop" and len(repeat):
        df = df.drop(index=df.index[repeat]).reset_index(drop=True)
        report.dropped = len(repeat)
    return df
