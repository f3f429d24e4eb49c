"""The options of every command, defined once: the CLI's ``--options``, the API's keywords
(``tdml.train_teacher(seq_len=96)``) and MLproject's ``-P`` parameters are the same names, each
setting one dotted config key. ``set`` / ``--set`` reach every other field.

A table maps an option name to ``(dotted key, parse)``; ``parse`` turns CLI text into a value
("" -- an unset MLproject parameter -- means "not given").
"""

from __future__ import annotations

import typing
from typing import Any

from tdml.config import deep_merge, load_yaml, set_dotted
from tdml.errors import ConfigError

Table = dict[str, tuple]


def parse_float(text: str) -> float | None:
    """A number option; "" (an MLproject default) means "not given"."""
    return None if text == "" else float(text)


def parse_int(text: str) -> int | None:
    """An integer option that also accepts MLflow's float rendering ('96.0'); "" = not given."""
    import argparse

    if text == "":
        return None
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


DATA_OPTS: Table = {"dataset": ("data.dataset", str), "data_path": ("data.data_path", str),
                    "seq_len": ("data.seq_len", parse_int), "pred_len": ("data.pred_len", parse_int),
                    "batch_size": ("data.batch_size", parse_int), "duplicates": ("data.duplicates", str)}
TRAIN_OPTS: Table = {"epochs": ("train.epochs", parse_int), "lr": ("train.lr", parse_float),
                     "seed": ("train.seed", parse_int), "patience": ("train.patience", parse_int),
                     "device": ("train.device", str)}
TRACK_OPTS: Table = {"alias": ("tracking.alias", str), "experiment": ("tracking.experiment", str),
                     "promote": ("tracking.promote", str)}


def loss_opts(*methods: str) -> Table:
    """One option per field of the named losses' ``Config`` (all registered losses when none
    are named), setting ``loss.<field>``: a method's options come from the method itself. A
    field named like a data/train/tracking option (MemKD's ``seed``) is ``loss_<field>``."""
    from tdml.losses import LOSSES

    taken = {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS}
    out: dict[str, tuple[str, Any]] = {}
    users: dict[str, list[str]] = {}
    for method in methods or LOSSES.names():
        for name, tp in typing.get_type_hints(LOSSES.get(method).Config).items():
            parse = parse_int if int in (tp, *typing.get_args(tp)) else parse_float if tp is float else str
            opt = f"loss_{name}" if name in taken else name
            out[opt] = (f"loss.{name}", parse)
            users.setdefault(opt, []).append(method)
    return {opt: (key, parse, f"--method {' / '.join(users[opt])}") for opt, (key, parse) in out.items()}


TEACHER_OPTS: Table = {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, "model": ("model", str)}
DISTILL_OPTS: Table = {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, **loss_opts(), "teacher": ("teacher", str),
                       "model": ("student", str), "method": ("method", str)}
# the main job distils with TimeDistill: its options are that method's
MAIN_OPTS: Table = {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, **loss_opts("timedistill"), "model": ("model", str)}
CONDENSE_OPTS: Table = {**DATA_OPTS, "n_windows": ("n_windows", parse_int), "method": ("method", str),
                        "protocol": ("protocol", str), "layout": ("layout", str),
                        "seed": ("seed", parse_int), "experts": ("experts_uri", str),
                        "iterations": ("match.iterations", parse_int), "experiment": ("tracking.experiment", str)}
REPORT_OPTS: Table = {"experiment": ("experiment", str), "family": ("family", str)}
TUNE_OPTS: Table = {"study": ("study", str), "n_trials": ("n_trials", parse_int), "storage": ("storage.url", str),
                    "n_jobs": ("n_jobs", parse_int)}


def raw_config(table: Table, given: dict[str, Any], config: str | None = None,
               overrides: dict[str, Any] | None = None, where: str = "") -> dict[str, Any]:
    """The raw run config: a ``config`` YAML file < the ``given`` options (names of ``table``;
    None or "" = not given) < ``overrides`` (dotted keys). An unknown option name is an error
    that lists the valid ones -- never silently ignored."""
    unknown = sorted(set(given) - set(table))
    if unknown:
        raise ConfigError(f"{where or 'options'}: unknown option(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(sorted(table))} (and set={{'dotted.key': value}} for any config field)")
    raw: dict[str, Any] = load_yaml(config) if config else {}
    chosen: dict[str, Any] = {}
    for name, value in given.items():
        if value is None or value == "":
            continue
        set_dotted(chosen, table[name][0], value)
    dotted: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        set_dotted(dotted, key, value)
    return deep_merge(deep_merge(raw, chosen), dotted)
