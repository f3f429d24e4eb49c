"""User-facing errors.

A ``TdmlError`` is bad input: the CLI prints its message (which names the problem and
the fix), marks the MLflow run FAILED with the reason, and exits non-zero. Anything else
is a bug and keeps its traceback.
"""


class TdmlError(Exception):
    """Bad input or an unusable resource; the message says what is wrong and how to fix it."""


class ConfigError(TdmlError):
    """An invalid configuration value or key."""


class DataError(TdmlError):
    """A dataset that cannot be found, read or windowed."""


class RegistryError(TdmlError):
    """An unknown name in one of tdml's registries, or an unusable registered model."""


class IncompatibleTeacherError(TdmlError):
    """A teacher whose shape or task does not match the requested distillation."""


class CacheError(TdmlError):
    """A teacher cache that cannot be written or would not fit (disk, size bound, dtype range)."""


class Stopped(KeyboardInterrupt):
    """The process was told to stop (SIGTERM from `docker compose stop`, a scheduler, scaling
    down; SIGINT from Ctrl-C). A KeyboardInterrupt, so every layer treats it as an interruption:
    MLflow runs end KILLED with this message, Optuna marks the trial FAIL."""

    def __init__(self, signal_name: str):
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name
