import numpy as np
import pandas as pd
import pytest

from tdml.config import DataConfig
from tdml.data import load_data
from tdml.data.catalog import CATALOG, DatasetSpec
from tdml.data.download import download, resolve, sha256_of
from tdml.data.synthetic import make_synthetic
from tdml.errors import DataError

ETTH1_SHA = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"


def test_etth1_month_split_and_train_scaler(shared_data):
    d = load_data(DataConfig(dataset="etth1", seq_len=720, pred_len=96))
    # Time-Series-Library convention: 12/4/4 months; val/test start seq_len rows early.
    assert {s: d.loader(s, 32).n_windows for s in ("train", "val", "test")} == \
        {"train": 8640 - 720 - 96 + 1, "val": 2880 - 96 + 1, "test": 2880 - 96 + 1}
    train = d.splits["train"].values.numpy()
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-3)
    assert d.sha256 == ETTH1_SHA and d.dims.n_channels == 7 and d.dims.n_marks == 4
    # first test target = first row of the test period (row 16 * 720)
    raw = pd.read_csv(shared_data / "ETTh1.csv").drop(columns="date").to_numpy()
    first_y = next(iter(d.loader("test", 1)))["y"][0, 0].numpy()
    np.testing.assert_allclose(first_y, (raw[16 * 720] - d.mean) / d.std, rtol=1e-4, atol=1e-4)


def test_test_loader_keeps_every_window():
    d = load_data(DataConfig(seq_len=48, pred_len=12))
    n = d.loader("test", 1).n_windows
    assert sum(b["x"].shape[0] for b in d.loader("test", 32)) == n and n % 32 != 0


def test_synthetic_is_deterministic_periodic_and_cross_coupled():
    from tdml.data.synthetic import LAG_STEP

    a, b = make_synthetic(), make_synthetic()
    pd.testing.assert_frame_equal(a, b)
    assert a.shape[1] - 1 >= 3 and not a.isna().any().any()
    x = a.drop(columns="date").to_numpy()
    spec = np.abs(np.fft.rfft(x[:, 0] - x[:, 0].mean()))
    assert spec[round(len(x) / 24)] > 20 * np.median(spec)  # a strong daily period
    # lead-lag coupling: after a seasonal difference removes the daily cycle, channel c
    # follows channel 0 best exactly c * LAG_STEP rows later
    sd = x[24:] - x[:-24]
    for c in range(1, x.shape[1]):
        cc = [np.corrcoef(sd[: len(sd) - lag, 0], sd[lag:, c])[0, 1] for lag in range(0, 49)]
        assert int(np.argmax(cc)) == c * LAG_STEP and max(cc) > 0.2


def test_shuffle_is_seeded():
    d = load_data(DataConfig(seq_len=48, pred_len=12))
    first = lambda seed: next(iter(d.loader("train", 8, shuffle=True, seed=seed)))["x"]
    assert (first(1) == first(1)).all() and not (first(1) == first(2)).all()


def _csv(tmp_path, df, name="d.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return str(p)


def _frame(n=400):
    return pd.DataFrame({"date": pd.date_range("2021-01-01", periods=n, freq="h").astype(str),
                         "a": np.arange(n, dtype=float), "b": np.sin(np.arange(n))})


def test_custom_csv_uses_ratio_split(tmp_path):
    d = load_data(DataConfig(data_path=_csv(tmp_path, _frame()), seq_len=24, pred_len=8))
    assert d.name == "d" and d.dims.n_channels == 2 and d.loader("train", 1).n_windows == 280 - 32 + 1


def test_csv_with_nan_names_the_column(tmp_path):
    df = _frame()
    df.loc[5, "b"] = np.nan
    with pytest.raises(DataError, match=r"missing values.*'b' \(1 missing\)"):
        load_data(DataConfig(data_path=_csv(tmp_path, df), seq_len=24, pred_len=8))


def test_csv_with_text_column_names_it(tmp_path):
    df = _frame()
    df["site"] = "x"
    with pytest.raises(DataError, match=r"'site' are not numeric"):
        load_data(DataConfig(data_path=_csv(tmp_path, df), seq_len=24, pred_len=8))


def test_too_few_rows_says_how_many_are_needed(tmp_path):
    with pytest.raises(DataError, match=r"too few rows for seq_len \+ pred_len = 96 \+ 24.*needs at least 120"):
        load_data(DataConfig(data_path=_csv(tmp_path, _frame(200)), seq_len=96, pred_len=24))


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(DataError, match=r"unknown dataset 'etth9'; valid datasets: synthetic, .*etth1.*weather"):
        load_data(DataConfig(dataset="etth9"))


def test_missing_file_without_url_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TDML_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"weather.*not in .*copy weather.csv into"):
        load_data(DataConfig(dataset="weather"))


def test_download_verifies_checksum_and_caches(tmp_path):
    src = tmp_path / "src" / "ETTx.csv"
    src.parent.mkdir()
    _frame().to_csv(src, index=False)
    good = sha256_of(src)
    spec = DatasetSpec("ettx", "ETTx.csv", "ratio", "h", url=src.as_uri(), sha256=good)
    cache = tmp_path / "cache"
    path = resolve(spec, cache)
    assert path == cache / "ETTx.csv" and sha256_of(path) == good
    src.unlink()  # second resolve is served from the cache, no download
    assert resolve(spec, cache) == path


def test_download_rejects_bad_checksum_and_saves_nothing(tmp_path):
    src = tmp_path / "f.csv"
    _frame().to_csv(src, index=False)
    dest = tmp_path / "cache" / "f.csv"
    with pytest.raises(DataError, match="checksum mismatch"):
        download(src.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_catalog_file_in_data_dir_is_used_offline(shared_data):
    spec = CATALOG.get("etth1")
    assert resolve(spec, shared_data, allow_download=False) == shared_data / "ETTh1.csv"
    assert CATALOG.get("etth2").sha256 == "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b"


def test_marks_come_from_the_date_column(tmp_path):
    df = _frame()
    d = load_data(DataConfig(data_path=_csv(tmp_path, df), seq_len=24, pred_len=8))
    assert d.freq == "h" and d.dims.n_marks == 4  # hour, weekday, day of month, day of year
    batch = next(iter(d.loader("train", 2)))
    hours = pd.DatetimeIndex(df["date"][:24]).hour.to_numpy()
    np.testing.assert_allclose(batch["x_mark"][0, :, 0].numpy(), hours / 23.0 - 0.5, atol=1e-6)


def test_a_csv_without_dates_has_no_marks(tmp_path):
    d = load_data(DataConfig(data_path=_csv(tmp_path, _frame().drop(columns="date")), seq_len=24, pred_len=8))
    assert d.freq is None and d.dims.n_marks == 0
    assert "x_mark" not in next(iter(d.loader("train", 2)))
