"""Model registry. Importing this package registers every architecture.

Adding a model = one new file with a ``@register_model`` class + one import line here.
"""

from tdml.models.base import MODELS, Dims, Forecaster, TdmlModel, build_model, model_from_config  # noqa: F401
from tdml.models import dlinear, itransformer, mlp  # noqa: F401  (registration side effects)
