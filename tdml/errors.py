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
