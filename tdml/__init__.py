"""tdml: distillation of time-series models as tracked, tunable MLflow experiments."""

__version__ = "0.1.0"
