"""The run bodies behind the entry points, one module each (``teacher``, ``distill``, ``main``,
``condense``) and what they share (``common``: the summary, fit-then-score, the end of a run
written once). Each expects an active MLflow run; configs are resolved inside it, so bad input
becomes a FAILED run with its reason."""
