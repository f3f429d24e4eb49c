"""The per-dataset default hyper-parameter table (tdml/models/defaults.yaml)."""

from __future__ import annotations

import dataclasses

import pytest

from tdml.errors import ConfigError, RegistryError
from tdml.models import MODELS, Dims, build_model
from tdml.models.defaults import default_params, default_train, load_table

TEACHERS = ["itransformer", "moderntcn", "timemixer", "patchtst", "micn", "fedformer", "timesnet", "autoformer"]


def test_packaged_table_is_valid_and_covers_every_teacher():
    table = load_table()
    for section in ("default", "etth1", "synthetic"):
        assert set(TEACHERS) <= set(table[section]), section
    for dataset, models in table.items():
        for model in models:
            default_params(model, dataset)  # raises on any bad key or value


def test_etth1_reference_sizes():
    assert default_params("patchtst", "ETTh1") == default_params("patchtst", "etth1")  # names: any case
    p = default_params("patchtst", "ETTh1")
    assert (p["e_layers"], p["n_heads"], p["d_model"], p["d_ff"], p["patch_len"], p["stride"]) == (1, 16, 512, 2048, 16, 8)
    m = default_params("moderntcn", "ETTh1")
    assert (m["patch_size"], m["patch_stride"], m["d_model"], m["large_kernel"], m["small_kernel"],
            m["ffn_ratio"], m["dropout"]) == (8, 4, 64, 51, 5, 1, 0.3)
    assert default_params("itransformer", "ETTh1")["d_model"] == 256
    for name in ("micn", "fedformer", "autoformer"):
        assert default_params(name, "ETTh1")["d_model"] == 512
    assert default_train("timesnet", "ETTh1") == {"lr": 1e-4, "epochs": 10}


def test_unknown_dataset_falls_back_to_dataclass_defaults():
    for name in MODELS.names():
        assert default_params(name, "no-such-dataset") == dataclasses.asdict(MODELS.get(name).Params())
    # the students' fallback row: the reference's generic training settings
    assert default_train("mlp", "no-such-dataset") == {"lr": 0.01, "lr_schedule": "type1", "epochs": 100,
                                                       "patience": 5}
    assert default_train("dlinear", "no-such-dataset") == {"lr": 1e-4, "epochs": 10}


@pytest.mark.parametrize("name", [t for t in TEACHERS if t != "itransformer"])
def test_synthetic_defaults_build_small_models(name):
    model = build_model(name, Dims(seq_len=96, n_channels=5, pred_len=24, n_marks=4), default_params(name, "synthetic"))
    assert model.n_parameters() < 500_000


def test_main_job_teacher_dwarfs_its_student():
    from tdml.resolve import ENTRY_DEFAULTS

    window = ENTRY_DEFAULTS["main"]["data"]
    dims = Dims(seq_len=window["seq_len"], n_channels=5, pred_len=window["pred_len"], n_marks=4)
    teacher = build_model("itransformer", dims, default_params("itransformer", "synthetic"))
    student = build_model("mlp", dims, default_params("mlp", "synthetic"))
    assert teacher.n_parameters() > 4 * student.n_parameters()


def test_unknown_keys_fail(tmp_path):
    bad_param = tmp_path / "a.yaml"
    bad_param.write_text("etth1:\n  patchtst: {d_modle: 64}\n")
    with pytest.raises(ConfigError, match="d_modle"):
        load_table(bad_param)
    bad_train = tmp_path / "b.yaml"
    bad_train.write_text("etth1:\n  patchtst: {train: {learning_rate: 0.1}}\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_table(bad_train)
    bad_model = tmp_path / "c.yaml"
    bad_model.write_text("etth1:\n  patchtsx: {}\n")
    with pytest.raises(RegistryError, match="patchtst"):
        load_table(bad_model)
    with pytest.raises(RegistryError):
        default_params("no-such-model", "etth1")


def test_custom_table_overrides_in_order(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("default:\n  timesnet: {d_model: 32, top_k: 3}\nmydata:\n  timesnet: {top_k: 2}\n")
    table = load_table(path)
    p = default_params("timesnet", "MyData", table=table)
    assert (p["d_model"], p["top_k"], p["d_ff"]) == (32, 2, 32)
