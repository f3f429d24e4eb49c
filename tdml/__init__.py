"""tdml: distillation of time-series models as tracked, tunable MLflow experiments.

``import tdml`` is the Python API (``tdml.api``; loaded on first use, so ``import tdml`` stays
cheap): ``train_teacher``, ``distill``, ``main``, ``condense``, ``tune``, ``report``, ``runs``,
``load_model``. Each takes its CLI command's options as keywords.
"""

__version__ = "0.1.0"

API = ("train_teacher", "distill", "main", "condense", "tune", "report", "runs", "load_model", "Model", "DryRun")
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    if name in API:  # by string, as every upward plug-in (docs/architecture.md)
        import importlib

        return getattr(importlib.import_module("tdml.api"), name)
    raise AttributeError(f"module 'tdml' has no attribute {name!r}")
