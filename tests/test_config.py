import dataclasses

import pytest

from tdml.config import (DistillRunConfig, TeacherRunConfig, TrainConfig,
                         coerce_dataclass, flatten, parse_overrides)
from tdml.losses.timedistill import TimeDistillConfig
from tdml.errors import ConfigError


def test_coerces_strings_and_nested_sections():
    cfg = coerce_dataclass(TeacherRunConfig, {"data": {"seq_len": "48", "dataset": "etth1"},
                                              "train": {"lr": "0.001", "progress": "false"}})
    assert cfg.data.seq_len == 48 and cfg.train.lr == 0.001 and cfg.train.progress is False


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) epoch; valid keys: .*epochs"):
        coerce_dataclass(TrainConfig, {"epoch": 3})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer"):
        coerce_dataclass(TeacherRunConfig, {"train": {"epochs": "three"}})


@pytest.mark.parametrize("field,value", [("alpha", -1), ("beta", -0.1), ("temperature", 0), ("scales", -1),
                                         ("kl_mode", "mean")])
def test_timedistill_rejects_meaningless_values(field, value):
    with pytest.raises(ConfigError, match=field):
        coerce_dataclass(TimeDistillConfig, {field: value})


def test_partial_nested_section_keeps_the_fields_own_default():
    # DistillRunConfig's student TrainConfig defaults to lr=0.01 / patience 5, not TrainConfig's.
    cfg = coerce_dataclass(DistillRunConfig, {"teacher": "models:/x@a", "train": {"epochs": 2}})
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.patience) == (2, 0.01, 5)


def test_overrides_and_flatten():
    assert parse_overrides(["train.epochs=3", "loss.kl_mode=reference"]) == \
        {"train": {"epochs": 3}, "loss": {"kl_mode": "reference"}}
    with pytest.raises(ConfigError):
        parse_overrides(["train.epochs"])
    flat = flatten(dataclasses.asdict(TeacherRunConfig()))
    assert flat["data.dataset"] == "synthetic" and "train.lr" in flat
