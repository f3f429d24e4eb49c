"""The ``tdml`` command; its subcommands are the MLproject entry points.

Options map onto dotted config keys; ``--config file.yaml`` and ``--set key=value`` reach
every other field. The raw config is type-checked inside the MLflow run, so bad input
ends as a FAILED run with its reason, a message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from typing import Any, Callable

from tdml import pipelines, runstate, tracking
from tdml.config import deep_merge, load_yaml, parse_overrides, set_dotted
from tdml.errors import ConfigError, Stopped, TdmlError
from tdml.resolve import Layers, resolve_teacher

def _float(text: str) -> float | None:
    """A number option; "" (an MLproject default) means "not given"."""
    return None if text == "" else float(text)


def _int(text: str) -> int | None:
    """An integer option that also accepts MLflow's float rendering ('96.0'); "" = not given."""
    if text == "":
        return None
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


# option -> (dotted config key, type); "" / 0 from MLproject defaults mean "not given" where noted
DATA_OPTS = {"dataset": ("data.dataset", str), "data_path": ("data.data_path", str),
             "seq_len": ("data.seq_len", _int), "pred_len": ("data.pred_len", _int),
             "batch_size": ("data.batch_size", _int), "duplicates": ("data.duplicates", str)}
TRAIN_OPTS = {"epochs": ("train.epochs", _int), "lr": ("train.lr", _float), "seed": ("train.seed", _int),
              "patience": ("train.patience", _int), "device": ("train.device", str)}
TRACK_OPTS = {"alias": ("tracking.alias", str), "experiment": ("tracking.experiment", str),
              "promote": ("tracking.promote", str)}


def loss_opts(*methods: str) -> dict[str, tuple]:
    """One option per field of the named losses' ``Config`` (all registered losses when none
    are named), setting ``loss.<field>``: a method's options come from the method itself. A
    field named like a data/train/tracking option (MemKD's ``seed``) is ``--loss-<field>``."""
    import typing

    from tdml.distill import LOSSES

    taken = {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS}
    out: dict[str, tuple[str, type]] = {}
    users: dict[str, list[str]] = {}
    for method in methods or LOSSES.names():
        for name, tp in typing.get_type_hints(LOSSES.get(method).Config).items():
            parse = _int if int in (tp, *typing.get_args(tp)) else _float if tp is float else str
            opt = f"loss_{name}" if name in taken else name
            out[opt] = (f"loss.{name}", parse)
            users.setdefault(opt, []).append(method)
    return {opt: (key, parse, f"--method {' / '.join(users[opt])}") for opt, (key, parse) in out.items()}


def _add(p: argparse.ArgumentParser, opts: dict[str, tuple]) -> None:
    for name, (key, tp, *note) in opts.items():
        # --kl-mode and --kl_mode: `mlflow run -P kl_mode=...` passes undeclared parameters
        # through with their underscores.
        flags = dict.fromkeys(["--" + name.replace("_", "-"), "--" + name])
        p.add_argument(*flags, dest=name, type=tp, default=None,
                       help=f"sets {key}" + (f" ({note[0]})" if note else ""))


def raw_config(args: argparse.Namespace, opts: dict[str, tuple]) -> dict[str, Any]:
    raw: dict[str, Any] = load_yaml(args.config) if args.config else {}
    given: dict[str, Any] = {}
    for name, (key, *_) in opts.items():
        v = getattr(args, name, None)
        if v is None or v == "":  # not given (MLproject passes "" for an unset string)
            continue
        set_dotted(given, key, v)
    return deep_merge(deep_merge(raw, given), parse_overrides(args.set or []))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with config fields (overridden by options)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="dotted override, e.g. --set train.patience=3 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _progress(args, raw):
    if args.no_progress:
        set_dotted(raw, "train.progress", False)
    return raw


def _final(s) -> str:
    """The final-split metrics of a run summary, e.g. 'test_mse=0.41 test_mae=0.43'."""
    return " ".join(f"{k}={v:.4f}" for k, v in s.metrics.items() if k.startswith(("test_", "val_")))


def cmd_train_teacher(args) -> int:
    raw = _progress(args, raw_config(args, {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, "model": ("model", str)}))
    exp = raw.get("tracking", {}).get("experiment", "tdml")
    with tracking.start_run(exp, f"teacher-{raw.get('model', 'itransformer')}", "teacher"):
        s = pipelines.train_teacher_in_run(resolve_teacher(raw))
    print(f"teacher run {s.run_id}: {_final(s)} params={s.n_params:,} registered={s.registered}")
    return 0


DISTILL_OPTS = {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, **loss_opts(), "teacher": ("teacher", str),
                "model": ("student", str), "method": ("method", str)}
# the main job distils with TimeDistill: its options are that method's
MAIN_OPTS = {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, **loss_opts("timedistill"), "model": ("model", str)}


def cmd_distill(args) -> int:
    raw = _progress(args, raw_config(args, DISTILL_OPTS))
    exp = raw.get("tracking", {}).get("experiment", "tdml")
    with tracking.start_run(exp, "student", "student"):
        s = pipelines.distill_in_run(Layers(explicit=raw))
    print(f"student run {s.run_id}: {_final(s)} params={s.n_params:,} "
          f"(teacher {s.extra['teacher_n_params']:,}) registered={s.registered}")
    return 0


def cmd_main(args) -> int:
    from tdml.pipelines import run_main_in_run

    raw_t = _progress(args, raw_config(args, {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, "model": ("model", str)}))
    raw_s = {k: v for k, v in _progress(args, raw_config(args, MAIN_OPTS)).items()
             if k in ("loss", "tracking", "train")}
    raw_s.setdefault("train", {}).pop("lr", None)  # --lr is the teacher's; the student keeps its own
    exp = raw_t.get("tracking", {}).get("experiment", "tdml")
    with tracking.start_run(exp, "main", "pipeline"):
        table = run_main_in_run(raw_t, raw_s)
    print(table)
    return 0


def cmd_report(args) -> int:
    """A ``report`` run in the experiment, with the table and the Pareto plot (tdml.comparison)."""
    from tdml.comparison import log_report, primary_metric  # plotly only when a report is written

    raw = raw_config(args, COMMANDS["report"][1])
    experiment = raw.get("experiment") or "tdml"
    names = tracking.experiment_names()
    if experiment not in names:  # checked first: a report run would create the experiment
        raise ConfigError(f"experiment {experiment!r} does not exist in {tracking.tracking_uri()}; "
                          f"experiments: {', '.join(names) or '(none)'}")
    with tracking.start_run(experiment, f"report {experiment}", "report"):
        df = log_report(experiment, raw.get("family", ""))
    y, _ = primary_metric(df)
    print(df[["run_name", "role", y, "n_params", "cpu_latency_ms_b32"]].to_string(index=False))
    return 0


def _lazy(module: str, function: str) -> Callable:
    """A subcommand whose module (Optuna, condensation) is imported only when it runs."""

    def run(args):
        return getattr(importlib.import_module(module), function)(args)

    return run


COMMANDS: dict[str, tuple[Callable, dict, str]] = {
    "condense": (_lazy("tdml.condense.cli", "cmd_condense"),
                 {**DATA_OPTS, "n_windows": ("n_windows", _int), "method": ("method", str), "seed": ("seed", _int),
                  "experts": ("experts_uri", str), "iterations": ("match.iterations", _int),
                  "experiment": ("tracking.experiment", str)},
                 "condense a dataset into a few synthetic windows (trajectory matching + CondTSF/DDTime)"),
    "train-teacher": (cmd_train_teacher, {**DATA_OPTS, **TRAIN_OPTS, **TRACK_OPTS, "model": ("model", str)},
                      "train a teacher and register it as <dataset>-<model>-L<seq>-H<pred>@<alias>"),
    "distill": (cmd_distill, DISTILL_OPTS,
                "distil a student from a registered teacher (models:/<name>@<alias>)"),
    "main": (cmd_main, MAIN_OPTS,
             "train a teacher on the data, distil an MLP through the registry, print the comparison"),
    "report": (cmd_report,
               {"experiment": ("experiment", str), "family": ("family", str)},
               "one table and Pareto plot (error vs latency / parameters) of an experiment's teachers "
               "and students, logged as a report run"),
    "tune": (_lazy("tdml.tuning.cli", "cmd_tune"),
             {"study": ("study", str), "n_trials": ("n_trials", _int), "storage": ("storage.url", str),
              "n_jobs": ("n_jobs", _int)},
             "run (or resume) an Optuna study from studies/*.yaml; trials are MLflow child runs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdml", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, opts, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        _add(p, opts)
        _common(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow.store", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stop)
    try:
        return args.func(args)
    except TdmlError as e:
        print(f"tdml {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:  # the runs it was in are KILLED with this reason (tdml.tracking)
        print(f"tdml {args.command}: {e}", file=sys.stderr)
        return 128 + getattr(signal, e.signal_name).value


def _stop(signum, frame) -> None:
    """SIGTERM / SIGINT: unwind through every open run and trial, which record why."""
    runstate.stop(signal.Signals(signum).name, frame)


if __name__ == "__main__":
    sys.exit(main())
