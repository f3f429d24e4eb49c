"""``tdml tune``: the CLI subcommand (registered in tdml/cli.py's COMMANDS)."""

from __future__ import annotations

from tdml import tracking
from tdml.config import deep_merge
from tdml.errors import ConfigError, TdmlError
from tdml.studies import load_spec
from tdml.tuning.kinds import KINDS
from tdml.tuning.search import tune


def cmd_tune(args) -> int:
    """``tdml tune --study studies/x.yaml [--n-trials N] [--storage URL] [--n-jobs K] [--set k=v]``."""
    from tdml.config import load_yaml, parse_overrides

    if not args.study:
        raise ConfigError("--study is required: a study spec such as studies/timedistill_synthetic.yaml")
    overrides = deep_merge(load_yaml(args.config) if args.config else {}, parse_overrides(args.set or []))
    if args.no_progress:
        overrides = deep_merge(overrides, {"base": {"train": {"progress": False}}})
    try:
        spec = load_spec(args.study, overrides)
        KINDS.get(spec.kind)(spec).validate()
        if (args.n_jobs or 1) < 1:
            raise ConfigError(f"--n-jobs must be >= 1, got {args.n_jobs}")
    except TdmlError:  # before any storage or trial: a FAILED study run that says why
        with tracking.start_run("tdml-tuning", "study-invalid", "study", {"tdml.study_file": str(args.study)}):
            raise
    r = tune(spec, args.n_trials or None, args.storage or None, args.n_jobs or 1)
    print(f"study {r.study_name} ({r.storage}): trials {r.n_trials}; parent run {r.parent_run_id}")
    for b in r.best[:5]:
        print(f"  best trial {b['number']}: {b['values']} params {b['params']} run {b['mlflow_run_id']}")
    for f in r.finals:
        print(f"  final (trial {f['number']}): {f['metrics']} -> models:/{f['registered_name']}/{f['version']}")
    if r.promotion:
        print(f"  promotion: {'PROMOTED' if r.promotion['promoted'] else 'kept current'} - {r.promotion['reason']}")
    return 0
