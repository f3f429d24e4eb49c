"""The ``tdml`` command; its subcommands are the MLproject entry points. Each one parses its
options (``tdml.options``: the API's keywords), calls the ``tdml.api`` function and prints.

Options map onto dotted config keys; ``--config file.yaml`` and ``--set key=value`` reach
every other field. The raw config is type-checked inside the MLflow run, so bad input
ends as a FAILED run with its reason, a message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Callable

from tdml import api, options, runstate
from tdml.config import DEFAULT_EXPERIMENT, deep_merge, load_yaml, parse_overrides
from tdml.errors import ConfigError, Stopped, TdmlError


def _add(p: argparse.ArgumentParser, opts: options.Table) -> None:
    for name, (key, tp, *note) in opts.items():
        # --kl-mode and --kl_mode: `mlflow run -P kl_mode=...` passes undeclared parameters
        # through with their underscores.
        flags = dict.fromkeys(["--" + name.replace("_", "-"), "--" + name])
        p.add_argument(*flags, dest=name, type=tp, default=None,
                       help=f"sets {key}" + (f" ({note[0]})" if note else ""))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with config fields (overridden by options)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="dotted override, e.g. --set train.patience=3 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config, each value with the layer it came from, and stop")


def given(args: argparse.Namespace, opts: options.Table) -> dict[str, Any]:
    """The options given on the command line (None / "" = not given), by name."""
    return {n: getattr(args, n) for n in opts if getattr(args, n, None) not in (None, "")}


def _call(args: argparse.Namespace, opts: options.Table) -> dict[str, Any]:
    """The API keywords of a command line: its options, ``set``, ``config``, ``progress``."""
    return {**given(args, opts), "set": parse_overrides(args.set or []), "config": args.config,
            "progress": not args.no_progress, "dry_run": args.dry_run}


def _dry(result) -> bool:
    """Print a dry run's resolved config(s); whether ``result`` was one."""
    runs = list(result.values()) if isinstance(result, dict) else [result]
    if not all(isinstance(r, api.DryRun) for r in runs):
        return False
    print("\n\n".join(map(str, runs)))
    return True


def raw_config(args: argparse.Namespace, opts: options.Table) -> dict[str, Any]:
    """The raw config a command line gives (what the API builds from the same keywords)."""
    return options.raw_config(opts, given(args, opts), args.config, parse_overrides(args.set or []))


def _final(s) -> str:
    """The final-split metrics of a run summary, e.g. 'test_mse=0.41 test_mae=0.43'."""
    return " ".join(f"{k}={v:.4f}" for k, v in s.metrics.items() if k.startswith(("test_", "val_")))


def cmd_train_teacher(args) -> int:
    s = api.train_teacher(**_call(args, options.TEACHER_OPTS))
    if _dry(s):
        return 0
    print(f"teacher run {s.run_id}: {_final(s)} params={s.n_params:,} registered={s.registered}")
    return 0


def cmd_distill(args) -> int:
    s = api.distill(**_call(args, options.DISTILL_OPTS))
    if _dry(s):
        return 0
    print(f"student run {s.run_id}: {_final(s)} params={s.n_params:,} "
          f"(teacher {s.extra['teacher_n_params']:,}) registered={s.registered}")
    return 0


def cmd_main(args) -> int:
    out = api.main(**_call(args, options.MAIN_OPTS))
    if not _dry(out):
        print(out)
    return 0


def cmd_report(args) -> int:
    """A ``report`` run in the experiment, with the table and the Pareto plot (tdml.comparison)."""
    from tdml.comparison import primary_metric

    raw = raw_config(args, options.REPORT_OPTS)
    df = api.report(raw.get("experiment") or DEFAULT_EXPERIMENT, raw.get("family", ""), dry_run=args.dry_run)
    if _dry(df):
        return 0
    y, _ = primary_metric(df)
    print(df[["run_name", "role", y, "n_params", "cpu_latency_ms_b32"]].to_string(index=False))
    return 0


def cmd_condense(args) -> int:
    from tdml.condensation.cli import summary_table

    kw = _call(args, options.CONDENSE_OPTS)
    kw.pop("progress")
    out = api.condense(**kw, verbose=args.verbose)
    if not _dry(out):
        print(summary_table(out))
    return 0


def cmd_tune(args) -> int:
    """``tdml tune --study studies/x.yaml [--n-trials N] [--storage URL] [--n-jobs K] [--set k=v]``."""
    if not args.study:
        raise ConfigError("--study is required: a study spec such as studies/timedistill_synthetic.yaml")
    overrides = deep_merge(load_yaml(args.config) if args.config else {}, parse_overrides(args.set or []))
    r = api.tune(args.study, n_trials=args.n_trials or None, storage=args.storage or None, n_jobs=args.n_jobs or 1,
                 set=overrides, progress=not args.no_progress, dry_run=args.dry_run)
    if _dry(r):
        return 0
    print(f"study {r.study_name} ({r.storage}): trials {r.n_trials}; parent run {r.parent_run_id}")
    for b in r.best[:5]:
        print(f"  best trial {b['number']}: {b['values']} params {b['params']} run {b['mlflow_run_id']}")
    for f in r.finals:
        print(f"  final (trial {f['number']}): {f['metrics']} -> models:/{f['registered_name']}/{f['version']}")
    if r.promotion:
        print(f"  promotion: {'PROMOTED' if r.promotion['promoted'] else 'kept current'} - {r.promotion['reason']}")
    return 0


COMMANDS: dict[str, tuple[Callable, options.Table, str]] = {
    "condense": (cmd_condense, options.CONDENSE_OPTS,
                 "condense a dataset into a few synthetic windows (trajectory matching + CondTSF/DDTime)"),
    "train-teacher": (cmd_train_teacher, options.TEACHER_OPTS,
                      "train a teacher and register it as <dataset>-<model>-L<seq>-H<pred>@<alias>"),
    "distill": (cmd_distill, options.DISTILL_OPTS,
                "distil a student from a registered teacher (models:/<name>@<alias>)"),
    "main": (cmd_main, options.MAIN_OPTS,
             "train a teacher on the data, distil an MLP through the registry, print the comparison"),
    "report": (cmd_report, options.REPORT_OPTS,
               "one table and Pareto plot (error vs latency / parameters) of an experiment's teachers "
               "and students, logged as a report run"),
    "tune": (cmd_tune, options.TUNE_OPTS,
             "run (or resume) an Optuna study from studies/*.yaml; trials are MLflow child runs"),
}
# what tests and older callers import from here
DISTILL_OPTS = options.DISTILL_OPTS


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
