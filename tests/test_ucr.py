"""UCR loader: the .ts/.tsv parsers, preprocessing, the split, and the real archive files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tdml.data.ucr import (ClassificationData, load_ucr, read_ts, read_tsv, resample, stratified_split,
                           znormalise)
from tdml.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

HEADER = """# a comment line
@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true a b c
@data
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_dataset(root: Path, name: str = "Toy", train: str | None = None, test: str | None = None,
                 ext: str = ".ts") -> Path:
    """A UCR-style folder under root/ucr with a 3-class train and test file."""
    rows = ["1,2,3,4:a", "4,3,2,1:a", "0,1,0,1:a", "2,2,3,3:a", "1,1,1,2:a",
            "5,6,7,8:b", "8,7,6,5:b", "1,5,1,5:b", "3,3,4,4:b", "9,8,9,8:b",
            "0,0,0,1:c", "1,0,0,0:c", "0,1,1,0:c"]
    train = train if train is not None else HEADER + "\n".join(rows) + "\n"
    test = test if test is not None else HEADER + "1,2,3,5:a\n5,6,7,9:b\n0,0,1,1:c\n"
    folder = root / "ucr" / name
    write(folder / f"{name}_TRAIN{ext}", train)
    write(folder / f"{name}_TEST{ext}", test)
    return root


# --------------------------------------------------------------------------- .ts parser


def test_read_ts_univariate(tmp_path):
    raw = read_ts(write(tmp_path / "a.ts", HEADER + "1,2,3,4:a\n-1.5,2e-1,3,4:c\n"))
    assert raw.labels == ["a", "c"]
    assert raw.n_channels == 1
    np.testing.assert_allclose(raw.series[1], [[-1.5, 0.2, 3, 4]])


def test_read_ts_multivariate_and_unequal_length(tmp_path):
    text = ("@problemName M\n@univariate false\n@dimensions 2\n@equalLength false\n"
            "@classLabel true x y\n@data\n1,2,3:4,5,6:x\n1,2:3,4:y\n")
    raw = read_ts(write(tmp_path / "m.ts", text))
    assert [s.shape for s in raw.series] == [(2, 3), (2, 2)]
    np.testing.assert_allclose(raw.series[0][1], [4, 5, 6])


@pytest.mark.parametrize("text, message", [
    ("@problemName X\n@classLabel true a b\n1,2:a\n", "header line or '@data'"),
    ("@problemName X\n@classLabel true a b\n", "no '@data'"),
    ("@classLabel true a b\n@data\n", "no series"),
    ("@classLabel false\n@data\n1,2,3\n", "no class labels"),
    ("@problemName X\n@data\n1,2:a\n", "no class labels"),
    ("@timeStamps true\n@classLabel true a b\n@data\n1,2:a\n", "timeStamps"),
    ("@classLabel true a b\n@data\n1,2:z\n", "'z' is not declared"),
    ("@classLabel true a b\n@data\n1,x,3:a\n", "'x' is not a number"),
    ("@classLabel true a b\n@data\n1,,3:a\n", "is not a number"),
    ("@classLabel true a b\n@data\n1,?,3:a\n", "missing values"),
    ("@classLabel true a b\n@data\n1,nan,3:a\n", "NaN"),
    ("@classLabel true a b\n@data\n1,2,3\n", "'v1,v2,...:label'"),
    ("@equalLength true\n@classLabel true a b\n@data\n1,2,3:a\n1,2:b\n", "ragged"),
    ("@equalLength true\n@seriesLength 5\n@classLabel true a b\n@data\n1,2,3:a\n", "@seriesLength says 5"),
    ("@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,2,3:b\n", "different numbers of dimensions"),
    ("@dimensions 3\n@classLabel true a b\n@data\n1,2:3,4:a\n", "@dimensions says 3"),
    ("@dimensions two\n@classLabel true a b\n@data\n1,2:3,4:a\n", "must be an integer"),
    ("@classLabel true a b\n@data\n1,2,3:4,5:a\n", "dimensions of one series have different lengths"),
])
def test_read_ts_malformed(tmp_path, text, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("?", r"\?").replace(".", r"\.")):
        read_ts(write(tmp_path / "bad.ts", text))


def test_read_ts_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.ts", "@classLabel true a b\n@data\n1,2:a\n1,oops:b\n")
    with pytest.raises(DataError, match=r"bad\.ts, line 4"):
        read_ts(path)


# --------------------------------------------------------------------------- .tsv parser


def test_read_tsv_trims_nan_padding_and_normalises_labels(tmp_path):
    raw = read_tsv(write(tmp_path / "a.tsv", "1\t0.5\t1.5\t2\n2.0\t3\t4\tNaN\n"))
    assert raw.labels == ["1", "2"]
    assert [s.shape for s in raw.series] == [(1, 3), (1, 2)]


@pytest.mark.parametrize("text, message", [
    ("1\t1\t2\n2\t1\n", "ragged rows"),
    ("1\t1\tabc\n", "'abc' is not a number"),
    ("1\t1\tNaN\t2\n", "NaN/inf inside"),
    ("1\tNaN\tNaN\n", "NaN/inf inside"),
    ("1 2 3\n", "no tab-separated values"),
    ("\n\n", "no series"),
])
def test_read_tsv_malformed(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_tsv(write(tmp_path / "bad.tsv", text))


# --------------------------------------------------------------------------- preprocessing


def test_resample_linear_interpolation():
    x = np.array([[0.0, 10.0]])
    np.testing.assert_allclose(resample(x, 5), [[0, 2.5, 5, 7.5, 10]])
    y = np.array([[0.0, 1.0, 4.0]])
    np.testing.assert_allclose(resample(y, 5), [[0, 0.5, 1, 2.5, 4]])  # through the middle point
    np.testing.assert_allclose(resample(y, 3), y)
    np.testing.assert_allclose(resample(np.array([[2.0]]), 3), [[2, 2, 2]])


def test_znormalise_per_channel_and_constant_channel():
    x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    z = znormalise(x)
    np.testing.assert_allclose(z[0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(z[0].std(), 1)
    np.testing.assert_array_equal(z[1], 0)


def test_stratified_split_proportions_seed_and_singletons():
    labels = np.array([0] * 10 + [1] * 5 + [2])  # class 2 has a single series
    tr, va = stratified_split(labels, 0.2, seed=3)
    assert len(va) == 4 and len(tr) == 12  # ceil(0.2 * 16)
    assert sorted(np.bincount(labels[va], minlength=3)) == [0, 1, 3]
    assert 15 in tr  # the singleton stays in train
    assert set(tr).isdisjoint(va) and len(set(tr) | set(va)) == 16
    np.testing.assert_array_equal(stratified_split(labels, 0.2, seed=3)[1], va)
    assert not np.array_equal(stratified_split(labels, 0.2, seed=4)[1], va)


def test_stratified_split_keeps_one_training_series_per_class():
    labels = np.array([0, 0, 1, 1, 2, 2])
    tr, va = stratified_split(labels, 0.9, seed=0)
    assert sorted(labels[tr]) == [0, 1, 2] and len(va) == 3


def test_stratified_split_impossible():
    with pytest.raises(DataError, match="single one"):
        stratified_split(np.array([0, 1, 2]), 0.2, seed=0)


# --------------------------------------------------------------------------- loading


def test_load_ucr_toy(tmp_path):
    root = make_dataset(tmp_path)
    data = load_ucr("ucr:Toy", length=6, directory=root)
    assert isinstance(data, ClassificationData)
    assert data.name == "Toy" and data.classes == ["a", "b", "c"]
    assert data.dims.seq_len == 6 and data.dims.n_channels == 1 and data.dims.n_classes == 3
    assert {s: len(v) for s, v in data.splits.items()} == {"train": 10, "val": 3, "test": 3}
    for split in data.splits.values():
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (6, 1)
    torch.testing.assert_close(data.splits["test"].y, torch.tensor([0, 1, 2]))
    x = data.splits["train"].x
    torch.testing.assert_close(x.mean(1), torch.zeros(10, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(x.std(1, unbiased=False), torch.ones(10, 1), atol=1e-5, rtol=0)
    assert data.describe()["n_samples_val"] == 3


def test_load_ucr_case_insensitive_name_and_tsv(tmp_path):
    train = "".join(f"{c}\t{i}\t{i + 1}\t{i * c}\n" for c in (1, 2) for i in range(5))
    root = make_dataset(tmp_path, "Tsvset", train=train, test="2\t1\t2\t3\n1\t0\t0\t1\n", ext=".tsv")
    data = load_ucr("ucr:tsvset", length=10, directory=root)
    assert data.name == "Tsvset" and data.classes == ["1", "2"]
    assert data.splits["test"].x.shape == (2, 10, 1)


def test_label_order_is_numeric(tmp_path):
    train = "".join(f"{c}\t1\t2\t{c}\n" for c in (10, 2, 1) for _ in range(3))
    root = make_dataset(tmp_path, "Num", train=train, test="2\t1\t2\t3\n", ext=".tsv")
    assert load_ucr("ucr:Num", directory=root).classes == ["1", "2", "10"]


def test_unknown_dataset_lists_available(tmp_path):
    root = make_dataset(tmp_path)
    with pytest.raises(DataError, match=r"'Nope' not found .*available: Toy"):
        load_ucr("ucr:Nope", directory=root)
    with pytest.raises(DataError, match="available: none"):
        load_ucr("ucr:Toy", directory=tmp_path / "empty")


def test_missing_test_file(tmp_path):
    root = make_dataset(tmp_path)
    (root / "ucr" / "Toy" / "Toy_TEST.ts").unlink()
    with pytest.raises(DataError, match="needs Toy_TRAIN.ts and Toy_TEST.ts"):
        load_ucr("ucr:Toy", directory=root)


def test_test_label_missing_from_train(tmp_path):
    train = HEADER + "1,2,3,4:a\n4,3,2,1:a\n5,6,7,8:b\n8,7,6,5:b\n1,1,2,2:b\n"
    root = make_dataset(tmp_path, train=train, test=HEADER + "1,2,3,4:c\n")
    with pytest.raises(DataError, match="test label\\(s\\) 'c' never occur"):
        load_ucr("ucr:Toy", directory=root)


def test_channel_mismatch_between_train_and_test(tmp_path):
    test = "@classLabel true a b c\n@data\n1,2:3,4:a\n"
    root = make_dataset(tmp_path, test=test)
    with pytest.raises(DataError, match="same channels"):
        load_ucr("ucr:Toy", directory=root)


def test_bad_arguments(tmp_path):
    root = make_dataset(tmp_path)
    with pytest.raises(DataError, match="length"):
        load_ucr("ucr:Toy", length=1, directory=root)
    with pytest.raises(DataError, match="val_fraction"):
        load_ucr("ucr:Toy", val_fraction=0.0, directory=root)


def test_loader_batches_shuffle_and_last_batch(tmp_path):
    data = load_ucr("ucr:Toy", length=5, directory=make_dataset(tmp_path))
    loader = data.loader("train", batch_size=4, shuffle=True, seed=1)
    assert len(loader) == 3
    epoch1 = list(loader)
    assert [b["x"].shape[0] for b in epoch1] == [4, 4, 2]
    assert set(epoch1[0]) == {"x", "y", "index"} and epoch1[0]["y"].dtype == torch.int64
    epoch2 = list(loader)
    ys1 = torch.cat([b["y"] for b in epoch1])
    xs1 = torch.cat([b["x"] for b in epoch1])
    assert sorted(ys1.tolist()) == sorted(data.splits["train"].y.tolist())
    assert not torch.equal(xs1, torch.cat([b["x"] for b in epoch2]))  # re-seeded per epoch
    again = list(data.loader("train", batch_size=4, shuffle=True, seed=1))
    assert torch.equal(torch.cat([b["y"] for b in again]), ys1)  # same seed, same order
    plain = torch.cat([b["x"] for b in data.loader("train", 4)])
    assert torch.equal(plain, data.splits["train"].x)


# --------------------------------------------------------------------------- real archive files


@pytest.fixture
def shared_ucr():
    if not (SHARED / "ucr").is_dir():
        pytest.skip(f"{SHARED / 'ucr'} is not present")
    return SHARED


@pytest.mark.parametrize("name, n_train, n_test, n_classes", [
    ("ItalyPowerDemand", 67, 1029, 2),
    ("Trace", 100, 100, 4),
])
def test_real_ucr_shapes(shared_ucr, name, n_train, n_test, n_classes):
    data = load_ucr(f"ucr:{name}", directory=shared_ucr)
    tr, va, te = (data.splits[s] for s in ("train", "val", "test"))
    assert len(tr) + len(va) == n_train and len(va) == -(-n_train // 5)  # ceil(20 %)
    assert te.x.shape == (n_test, 100, 1)
    assert data.dims.n_classes == n_classes and data.dims.seq_len == 100
    assert set(va.y.tolist()) == set(range(n_classes))  # stratified: every class in validation
    assert torch.isfinite(tr.x).all()


def test_real_ucr_resampling_matches_raw_file(shared_ucr):
    raw = read_ts(shared_ucr / "ucr" / "ItalyPowerDemand" / "ItalyPowerDemand_TEST.ts")
    data = load_ucr("ucr:ItalyPowerDemand", length=24, directory=shared_ucr)
    # length 24 is the original length: only z-normalisation (the archive is already z-normalised)
    expected = znormalise(raw.series[0])[0]
    np.testing.assert_allclose(data.splits["test"].x[0, :, 0].numpy(), expected, atol=1e-5)
