"""Whether a registered model can be loaded here: its ``models:/`` URI resolves (version or
alias) and its run's files exist -- a committed benchmark store on a fresh checkout has the
registry rows but not the artifacts, so the benches train such a teacher again."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tdml.errors import TdmlError
from tdml.mlflow_models import resolve_version


def readable(uri: str) -> bool:
    try:
        return bool(MlflowClient().list_artifacts(resolve_version(uri).run_id))
    except (TdmlError, MlflowException, OSError):
        return False
