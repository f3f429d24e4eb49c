"""The run bodies behind the entry points, one module each (``teacher``, ``distill``, ``main``,
``condense``) and what they share (``common``: the summary, fit-then-score, the end of a run
written once). Each expects an active MLflow run; configs are resolved inside it, so bad input
becomes a FAILED run with its reason.

``tdml.runs`` is also the API's ``runs(experiment=...)`` (the table of an experiment's runs):
once this package is imported, the attribute ``tdml.runs`` is this module, so the module is made
callable and forwards to ``tdml.api.runs``.
"""

import sys
import types


class _RunsModule(types.ModuleType):
    def __call__(self, *args, **kwargs):  # by string, as every upward reference (docs/architecture.md)
        import importlib

        return importlib.import_module("tdml.api").runs(*args, **kwargs)


sys.modules[__name__].__class__ = _RunsModule
