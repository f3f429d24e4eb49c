"""Real-world CSVs (issue 24): dirty headers, duplicated timestamps, gaps, unparsable or
unordered dates, pinned catalog checksums -- reported or refused, never silently used."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from conftest import runs_of, tiny_teacher_args
from tdml.cli import main
from tdml.config import DataConfig
from tdml.data import load_data, read_csv
from tdml.data.catalog import CATALOG
from tdml.data.download import resolve
from tdml.errors import DataError

DIRTY = ["date", " p (mbar)", "SWDR (W/m\ufffd)", "PAR (\ufffdmol/m\ufffd/s)", "T  (degC) "]
CLEAN = ["p (mbar)", "SWDR (W/m_)", "PAR (_mol/m_/s)", "T (degC)"]


def _dirty_csv(tmp_path, n=300, name="dirty.csv"):
    """A weather-like file as archives ship it: CRLF, U+FFFD and stray spaces in headers, one
    repeated timestamp (row 100 repeats row 99) and one 100-minute gap (after row 200)."""
    dates = list(pd.date_range("2020-01-01", periods=n - 1, freq="10min"))
    dates.insert(100, dates[99])
    dates[201:] = [d + pd.Timedelta(minutes=90) for d in dates[201:]]
    rng = np.random.default_rng(0)
    rows = [",".join([str(d)] + [f"{v:.3f}" for v in rng.normal(size=4)]) for d in dates]
    path = tmp_path / name
    path.write_bytes(("\r\n".join([",".join(DIRTY)] + rows) + "\r\n").encode("utf-8"))
    return path


def test_dirty_headers_duplicates_and_gaps_are_reported_and_kept(tmp_path, caplog):
    path = _dirty_csv(tmp_path)
    with caplog.at_level("WARNING"):
        d = load_data(DataConfig(data_path=str(path), seq_len=24, pred_len=8))
    assert d.columns == CLEAN and d.freq == "10min"
    h = d.hygiene
    assert h.duplicates == ["2020-01-01 16:30:00"] and h.dropped == 0
    assert h.gaps == [("2020-01-02 09:10:00", "2020-01-02 10:50:00")] and h.step == "0 days 00:10:00"
    assert h.tags() == {"tdml.data.duplicate_timestamps": "1", "tdml.data.gaps": "1",
                        "tdml.data.renamed_columns": "4", "tdml.data.dropped_rows": "0"}
    text = caplog.text
    assert "1 duplicated timestamp(s), e.g. 2020-01-01 16:30:00" in text and "data.duplicates=drop" in text
    assert "1 gap(s) longer than the usual 0 days 00:10:00 interval, e.g. 2020-01-02 09:10:00 -> 2020-01-02 10:50:00" in text
    assert "'SWDR (W/m\ufffd)' -> 'SWDR (W/m_)'" in text
    n_kept = sum(d.loader(s, 1).n_windows for s in ("train",))
    dropped = load_data(DataConfig(data_path=str(path), seq_len=24, pred_len=8, duplicates="drop"))
    assert dropped.hygiene.dropped == 1 and dropped.hygiene.duplicates == ["2020-01-01 16:30:00"]
    assert sum(dropped.loader(s, 1).n_windows for s in ("train",)) < n_kept  # one row fewer (ratio split)


def test_a_run_on_a_dirty_file_is_tagged_and_logs_clean_names(tmp_path, mlflow_store):
    path = _dirty_csv(tmp_path, n=400)
    args = [a for a in tiny_teacher_args() if a != "synthetic"]
    args[args.index("--dataset")] = "--data-path"
    args.insert(args.index("--data-path") + 1, str(path))
    assert main([*args, "--duplicates", "drop"]) == 0
    (run,) = runs_of(MlflowClient(), "teacher")
    assert run.data.tags["tdml.data.duplicate_timestamps"] == "1" and run.data.tags["tdml.data.gaps"] == "1"
    assert run.data.tags["tdml.data.dropped_rows"] == "1" and run.data.tags["tdml.data.renamed_columns"] == "4"
    schema = {i.dataset.name: i.dataset.schema for i in run.inputs.dataset_inputs}["dirty-train"]
    assert all(name in schema for name in CLEAN) and "\ufffd" not in schema
    (version,) = MlflowClient().search_model_versions(f"run_id = '{run.info.run_id}'")
    info = mlflow.models.get_model_info(f"models:/{version.name}/{version.version}")
    assert info.signature.inputs.input_names()[1:] == CLEAN


@pytest.mark.parametrize("bad, message", [
    ({100: "2020-13-45 00:00:00"}, r"1 value\(s\) that are not dates; the first is '2020-13-45 00:00:00' at row 100 \(line 102"),
    ({150: "2019-06-01 00:00:00"}, r"not in time order: row 150 \(line 152 of the file\) has 2019-06-01.*sort the file"),
])
def test_bad_dates_name_the_first_bad_row(tmp_path, bad, message):
    df = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=300, freq="h").astype(str),
                       "a": np.arange(300.0)})
    for i, v in bad.items():
        df.loc[i, "date"] = v
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=message):
        read_csv(tmp_path / "bad.csv")


def test_an_unknown_duplicates_policy_fails_the_run_with_exit_2(mlflow_store, capsys):
    assert main([*tiny_teacher_args(), "--duplicates", "first"]) == 2
    assert "data.duplicates must be 'keep' (the benchmark convention) or 'drop', got 'first'" in capsys.readouterr().err
    (run,) = runs_of(MlflowClient(), "teacher")
    assert run.info.status == "FAILED"


def test_bad_dates_fail_the_run_with_exit_2(tmp_path, mlflow_store, capsys):
    df = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=300, freq="h").astype(str),
                       "a": np.arange(300.0)})
    df.loc[7, "date"] = "yesterday"
    df.to_csv(tmp_path / "bad.csv", index=False)
    args = [a for a in tiny_teacher_args() if a != "synthetic"]
    args[args.index("--dataset")] = "--data-path"
    args.insert(args.index("--data-path") + 1, str(tmp_path / "bad.csv"))
    assert main(args) == 2
    assert "the first is 'yesterday' at row 7 (line 9 of the file)" in capsys.readouterr().err
    (run,) = runs_of(MlflowClient(), "teacher")
    assert run.info.status == "FAILED" and "yesterday" in run.data.tags["tdml.error"]


def test_names_that_collide_once_cleaned_are_refused(tmp_path):
    (tmp_path / "c.csv").write_text("date,a ,a\n2020-01-01 00:00:00,1,2\n")
    with pytest.raises(DataError, match=r"columns 'a ' and 'a' both become 'a'.*rename one of them"):
        read_csv(tmp_path / "c.csv")
    (tmp_path / "ok.csv").write_text("date,a\n2020-01-01 00:00:00,1\n")
    with pytest.raises(DataError, match=r"data.duplicates must be one of keep, drop, got 'first'"):
        read_csv(tmp_path / "ok.csv", duplicates="first")


def test_a_catalog_file_with_another_checksum_names_both_and_the_path(tmp_path):
    assert CATALOG.get("ettm1").sha256 == "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e"
    assert CATALOG.get("ettm2").sha256 == "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd"
    path = tmp_path / "ETTm1.csv"
    path.write_text("date,a\n2020-01-01 00:00:00,1\n")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError) as e:
        resolve(CATALOG.get("ettm1"), tmp_path, allow_download=False)
    assert str(path) in str(e.value) and CATALOG.get("ettm1").sha256 in str(e.value) and got in str(e.value)
    assert path.read_text() == "date,a\n2020-01-01 00:00:00,1\n"  # the user's file is left alone


def test_the_shipped_weather_file_is_reported_as_it_is(shared_data):
    if not (shared_data / "weather.csv").is_file():
        pytest.skip(f"weather.csv not found in {shared_data}")
    df, h = read_csv(shared_data / "weather.csv")
    assert len(df) == 52696 and df.shape[1] == 22 and not any("\ufffd" in c for c in df.columns)
    assert set(h.renamed) == {c for c in pd.read_csv(shared_data / "weather.csv", nrows=0).columns if "\ufffd" in c}
    assert h.duplicates == ["2020-05-12 06:00:00"]
    assert len(h.gaps) == 1 and h.gaps[0][0].startswith("2020-05-29") and h.step == "0 days 00:10:00"
    assert resolve(CATALOG.get("ettm1"), shared_data, allow_download=False) == shared_data / "ETTm1.csv"
