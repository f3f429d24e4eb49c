"""One loss contract for every method (docs/architecture.md, "Contracts"): a Config beside the
loss, named terms, weights() and the one weighted_sum; method options from the method's Config;
search spaces as dotted run-config paths, checked against the kind's run config."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from tdml.cli import build_parser, raw_config
from tdml.condensation.plugins import DDTimeConfig, DDTimeTerms
from tdml.losses import LOSSES
from tdml.losses.base import DistillationLoss, Loss, weighted_sum
from tdml.errors import ConfigError, TdmlError
from tdml.resolve import Layers, resolve_distill
from tdml.studies import spec_from_dict
from tdml import tuning

from tuning_helpers import tiny_spec

URI = "models:/synthetic-itransformer-L96-H24@champion"


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_registered_loss_follows_the_contract(name):
    cls = LOSSES.get(name)
    assert issubclass(cls, DistillationLoss)
    assert dataclasses.is_dataclass(cls.Config)
    # the Config is defined beside its loss (or in the shared classification module), not in tdml.config
    assert cls.Config.__module__.startswith("tdml.losses."), cls.Config.__module__
    for hook in ("from_models", "teacher_features", "weights", "total", "diagnostic_settings"):
        assert callable(getattr(cls, hook)), hook


def test_condensation_terms_are_a_loss_summed_by_the_one_weighted_sum():
    assert issubclass(DDTimeTerms, Loss) and DDTimeTerms.Config is DDTimeConfig
    torch.manual_seed(0)
    x, y, pred = torch.randn(4, 8, 2), torch.randn(4, 6, 2), torch.randn(4, 6, 2)
    off = DDTimeTerms(DDTimeConfig())
    assert off(x, y, pred) == {} and off.weights() == {"value": 0.0, "isib": 0.0}
    on = DDTimeTerms(DDTimeConfig(freq=True, isib=True, value_weight=0.5, lam=2.0))
    terms = on(x, y, pred)
    assert set(terms) == {"value", "isib"}
    expected = 0.5 * terms["value"] + 2.0 * terms["isib"]
    assert torch.equal(on.total(terms), expected)
    assert torch.equal(weighted_sum({"match": torch.tensor(1.0), **terms}, {"match": 1.0, **on.weights()}),
                       1.0 + expected)


def _resolved(argv: list[str]):
    args = build_parser().parse_args(["distill", "--teacher", URI, *argv])
    from tdml.cli import DISTILL_OPTS

    return resolve_distill(Layers(explicit=raw_config(args, DISTILL_OPTS)))


def test_method_options_come_from_the_methods_config():
    cfg = _resolved(["--method", "memkd", "--model", "lstm_student", "--long-pairs", "8", "--weight", "0.3",
                     "--loss-seed", "5"])
    assert (cfg.loss["long_pairs"], cfg.loss["weight"], cfg.loss["seed"]) == (8, 0.3, 5)
    assert cfg.train.seed == 2021  # --seed stays the run's, MemKD's own seed is --loss-seed
    cfg = _resolved(["--method", "dkd", "--model", "lstm_student", "--alpha", "2", "--temperature", "3"])
    assert (cfg.loss["alpha"], cfg.loss["temperature"]) == (2.0, 3.0)
    # an option of another method is refused naming the method's own fields
    with pytest.raises(ConfigError, match=r"loss \(timedistill\): unknown key\(s\) long_pairs; valid keys: alpha"):
        _resolved(["--long-pairs", "8"])
    # every field of every registered loss's Config is an option
    text = build_parser()._subparsers._group_actions[0].choices["distill"].format_help()
    for name in LOSSES.names():
        for f in dataclasses.fields(LOSSES.get(name).Config):
            flag = f.name if f.name != "seed" else "loss-seed"
            assert f"--{flag.replace('_', '-')}" in text, (name, f.name)


def _validate(**kw):
    spec = spec_from_dict(tiny_spec(**kw))
    tuning.KINDS.get(spec.kind)(spec).validate()
    return spec


def test_search_space_paths_are_generic_and_checked_against_the_run_config():
    spec = _validate(search_space={"loss.beta": {"low": 0.0, "high": 1.0},
                                   "target_weight": {"low": 0.5, "high": 1.0},
                                   "data": {"batch_size": {"type": "categorical", "choices": [16, 32]}}})
    assert {"loss.alpha", "loss.kl_mode", "train.lr", "loss.beta", "target_weight",
            "data.batch_size"} == {p for p, _ in spec.search_space.items()}
    kind = tuning.KINDS.get("distill")(spec)
    raw = kind.search_space(__import__("optuna").trial.FixedTrial(
        {"loss.alpha": 1.0, "loss.kl_mode": "full", "train.lr": 0.01, "loss.beta": 0.5, "target_weight": 0.7,
         "data.batch_size": 16}))
    assert raw == {"loss": {"alpha": 1.0, "kl_mode": "full", "beta": 0.5}, "train": {"lr": 0.01},
                   "target_weight": 0.7, "data": {"batch_size": 16}}
    cases = {
        "train.lrr": "search_space.train: unknown field 'lrr'; valid: .*lr",
        "student_params.width": "search_space.student_params: unknown field 'width'; valid: .*d_model",
        "train.lr.x": "'train.lr' is a value, not a section",
        "target_weight": r"search_space.target_weight: bad range.*target_weight must be >= 0",
    }
    for path, message in cases.items():
        with pytest.raises(TdmlError, match=message):
            _validate(search_space={path: {"low": -1.0 if path == "target_weight" else 0.1, "high": 1.0}})


def test_a_condense_study_searches_condense_paths():
    spec = spec_from_dict({"name": "c", "kind": "condense", "finalize": False,
                           "base": {"method": "mtt+ddtime"},
                           "search_space": {"ddtime": {"lam": {"low": 0.1, "high": 1.0}},
                                            "condtsf.beta": {"low": 0.01, "high": 0.1},
                                            "n_windows": {"type": "int", "low": 4, "high": 8}},
                           "objectives": [{"metric": "val_mse"}]})
    tuning.KINDS.get("condense")(spec).validate()
    for space, message in (({"loss": {"alpha": {"low": 0.0, "high": 1.0}}}, "unknown component 'loss'; valid: .*ddtime"),
                           ({"ddtime.alpha": {"low": 0.0, "high": 2.0}}, r"ddtime.alpha must be in \[0, 1\]")):
        bad = spec_from_dict({**dataclasses.asdict(spec), "search_space": space, "sampler": {}, "pruner": {},
                              "promotion": {}, "storage": {}, "objectives": [{"metric": "val_mse"}]})
        with pytest.raises(ConfigError, match=message):
            tuning.KINDS.get("condense")(bad).validate()


def test_no_loss_config_lives_in_the_shared_config_module():
    import tdml.config as config

    names = {n for n, obj in inspect.getmembers(config, inspect.isclass) if dataclasses.is_dataclass(obj)}
    assert not {n for n in names if "Distill" in n and n.endswith("Config") and n != "DistillRunConfig"}
