"""The one config resolver: layer order, per-dataset/teacher defaults, and the documented
`-P teacher=...`-only path through the real registry picking the teacher's dataset's row."""

from __future__ import annotations

import dataclasses

import pytest

from tdml.cli import main
from tdml.config import DistillRunConfig
from tdml.errors import ConfigError
from tdml.models.defaults import default_loss, load_table
from tdml.resolve import Layers, resolve_distill, resolve_teacher
from tdml.studies import spec_from_dict
from tdml.tuning import KINDS

from conftest import runs_of, use_store


def _meta(dataset: str, teacher: str = "itransformer", task: str = "forecast") -> dict:
    """What a registered teacher's metadata carries (tdml.runs.common.model_meta)."""
    return {"task": task, "model": {"name": teacher},
            "data_config": {"dataset": dataset, "seq_len": 720, "pred_len": 96, "batch_size": 32}}


def test_inherited_dataset_picks_its_row_and_the_teacher_specific_entry():
    cfg = resolve_distill(Layers(explicit={"teacher": "models:/t@champion"}), _meta("etth2"))
    assert cfg.data.dataset == "etth2" and (cfg.student, cfg.method) == ("mlp", "timedistill")
    assert (cfg.loss["alpha"], cfg.loss["beta"]) == (1.0, 0.5)  # iTransformer teacher script
    tcn = resolve_distill(Layers(explicit={"teacher": "models:/t@champion"}), _meta("etth2", "moderntcn"))
    assert (tcn.loss["alpha"], tcn.loss["beta"]) == (2.0, 0.5)  # ModernTCN teacher script
    assert cfg.loss["kl_mode"] == "reference" and cfg.loss["temperature"] == 0.5
    assert (cfg.train.lr, cfg.train.lr_schedule, cfg.train.patience, cfg.train.epochs) == (0.01, "type1", 5, 100)
    traffic = resolve_distill(Layers(explicit={"teacher": "models:/t@champion"}), _meta("traffic"))
    assert traffic.student_params["d_model"] == 1024 and traffic.student_params["norm"] == "revin"
    assert traffic.train.epochs == 10


def test_any_other_csv_gets_the_generic_reference_weights():
    meta = _meta("synthetic")
    meta["data_config"] = {"dataset": "synthetic", "data_path": "/data/my_sensors.csv"}
    cfg = resolve_distill(Layers(explicit={"teacher": "models:/t@champion"}), meta)
    assert cfg.data.label == "my_sensors"
    assert (cfg.loss["alpha"], cfg.loss["beta"]) == (1.0, 1.0)


def test_layer_order_table_lt_study_lt_trial_lt_explicit_lt_run_mode():
    meta = _meta("etth1")
    table = resolve_distill(Layers(explicit={"teacher": "x"}), meta)
    assert table.loss["alpha"] == 2.0 and table.loss["beta"] == 2.0
    study = Layers(study_base={"teacher": "x", "loss": {"alpha": 0.7}, "train": {"epochs": 4}})
    assert resolve_distill(study, meta).loss["alpha"] == 0.7
    trial = dataclasses.replace(study, trial={"loss": {"alpha": 0.3}})
    cfg = resolve_distill(trial, meta)
    assert cfg.loss["alpha"] == 0.3 and cfg.loss["beta"] == 2.0 and cfg.train.epochs == 4
    explicit = dataclasses.replace(trial, explicit={"loss": {"alpha": 0.5}})
    assert resolve_distill(explicit, meta).loss["alpha"] == 0.5
    forced = dataclasses.replace(explicit, explicit={"tracking": {"final_split": "test"}},
                                 run_mode={"tracking": {"final_split": "val"}})
    assert resolve_distill(forced, meta).tracking.final_split == "val"


def test_explicit_data_wins_over_the_teacher_and_zero_means_inherit():
    cfg = resolve_distill(Layers(explicit={"teacher": "x", "data": {"seq_len": 0, "pred_len": 0, "batch_size": 8}}),
                          _meta("etth1"))
    assert (cfg.data.seq_len, cfg.data.pred_len, cfg.data.batch_size) == (720, 96, 8)


def test_resolved_configs_are_frozen_and_typed():
    cfg = resolve_distill(Layers(explicit={"teacher": "x"}), _meta("etth1"))
    assert isinstance(cfg, DistillRunConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.student = "dmlp"
    with pytest.raises(ConfigError, match="kl_mode: 'mean' is not one of 'reference', 'full'"):
        resolve_distill(Layers(explicit={"teacher": "x", "loss": {"kl_mode": "mean"}}), _meta("etth1"))
    t = resolve_teacher({"data": {"dataset": "etth1"}, "model": "itransformer"})
    assert t.model_params["d_model"] == 256 and t.train.lr == 1e-4  # the etth1 row, logged as resolved


def test_student_and_method_follow_the_teachers_task():
    meta = _meta("ucr:Trace", "lstm_teacher", task="classify")
    meta["data_config"] = {"dataset": "ucr:Trace", "seq_len": 100}
    cfg = resolve_distill(Layers(explicit={"teacher": "x"}), meta)
    assert (cfg.student, cfg.method) == ("lstm_student", "memkd")
    assert cfg.train.lr == 0.003 and cfg.train.lr_schedule == "constant"  # the table's lstm_student row


def test_every_catalog_dataset_has_a_student_row():
    from tdml.data.catalog import CATALOG

    table = load_table()
    for name in CATALOG.names():
        for student in ("mlp", "dmlp"):
            assert "timedistill" in table[name][student]["loss"], (name, student)
    assert default_loss("mlp", "weather", "timedistill", "moderntcn") == {"alpha": 0.5, "beta": 2.0}


def test_a_study_trial_value_wins_over_the_table():
    spec = spec_from_dict({"name": "s", "teacher": "models:/t@champion", "base": {"train": {"epochs": 2}},
                           "data": {"batch_size": 16}})
    kind = KINDS.get("distill")(spec)
    layers = kind.layers({"loss": {"beta": 0.25}}, final=False)
    cfg = resolve_distill(layers, _meta("etth1"))
    assert (cfg.loss["alpha"], cfg.loss["beta"]) == (2.0, 0.25)
    assert cfg.data.batch_size == 16 and cfg.tracking.final_split == "val" and not cfg.tracking.register


@pytest.fixture(scope="module")
def etth1_store(tmp_path_factory):
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "ETTh1.csv").is_file():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    root = tmp_path_factory.mktemp("resolve")
    with use_store(root, TDML_DATA_DIR=str(SHARED_DATA)) as client:
        args = ["train-teacher", "--dataset", "etth1", "--model", "itransformer", "--seq-len", "48",
                "--pred-len", "12", "--epochs", "1", "--no-progress", "--set", "train.max_batches=2",
                "--set", "tracking.latency_repeats=2", "--set", "tracking.diagnostics=false",
                "--set", "model_params.d_model=16", "--set", "model_params.d_ff=16"]
        assert main(args) == 0
        yield client


def _distill(*extra: str) -> list[str]:
    return ["distill", "--teacher", "models:/etth1-itransformer-L48-H12@champion", "--epochs", "1",
            "--no-progress", "--set", "train.max_batches=2", "--set", "tracking.latency_repeats=2",
            "--set", "tracking.diagnostics=false", "--set", "tracking.register=false", *extra]


def test_teacher_alone_picks_the_etth1_weights_and_logs_the_resolved_config(etth1_store):
    assert main(_distill()) == 0
    p = runs_of(etth1_store, "student")[0].data.params
    assert p["config.data.dataset"] == "etth1" and p["config.student"] == "mlp"
    assert (p["config.loss.alpha"], p["config.loss.beta"], p["config.loss.kl_mode"]) == ("2.0", "2.0", "reference")
    assert p["config.student_params.d_model"] == "512" and p["config.train.patience"] == "5"


def test_an_explicit_alpha_wins_over_the_table(etth1_store):
    assert main(_distill("--alpha", "0.5")) == 0
    p = runs_of(etth1_store, "student")[0].data.params
    assert (p["config.loss.alpha"], p["config.loss.beta"]) == ("0.5", "2.0")
