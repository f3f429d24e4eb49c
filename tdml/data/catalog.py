"""The dataset catalog: name -> file, download URL, checksum, split rule, frequency.

A name is looked up in ``TDML_DATA_DIR`` (default: the per-user cache folder) before
anything is downloaded, so a file placed there works offline.
"""

from __future__ import annotations

from dataclasses import dataclass

from tdml.registry import Registry

_ETT = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/"
# The other long-term forecasting sets are distributed by the Time-Series-Library authors
# on Google Drive / Tsinghua Cloud only, which has no stable direct-download URL.
_TSLIB_HELP = ("download the Time-Series-Library dataset archive "
               "(https://github.com/thuml/Time-Series-Library, 'Prepare Data') and copy {file} into {dir}")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    filename: str
    split: str  # a key of tdml.data.splits.SPLITS
    freq: str  # pandas-style frequency of the date column ('h', '15min', '10min')
    url: str | None = None
    sha256: str | None = None  # None: no pinned checksum (the computed one is logged)
    manual: str | None = None  # how to obtain the file when there is no URL
    target: str = "OT"


CATALOG: Registry[DatasetSpec] = Registry("dataset")


def _add(spec: DatasetSpec) -> None:
    CATALOG.register(spec.name)(spec)


_add(DatasetSpec("etth1", "ETTh1.csv", "ett_hour", "h", _ETT + "ETTh1.csv",
                 "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"))
_add(DatasetSpec("etth2", "ETTh2.csv", "ett_hour", "h", _ETT + "ETTh2.csv",
                 "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b"))
_add(DatasetSpec("ettm1", "ETTm1.csv", "ett_minute", "15min", _ETT + "ETTm1.csv",
                 "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e"))
_add(DatasetSpec("ettm2", "ETTm2.csv", "ett_minute", "15min", _ETT + "ETTm2.csv",
                 "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd"))
_add(DatasetSpec("weather", "weather.csv", "ratio", "10min", manual=_TSLIB_HELP))
_add(DatasetSpec("electricity", "electricity.csv", "ratio", "h", manual=_TSLIB_HELP))
_add(DatasetSpec("traffic", "traffic.csv", "ratio", "h", manual=_TSLIB_HELP))
