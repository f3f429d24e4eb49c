"""Model registry. Importing this package registers every architecture.

Adding a model = one new file with a ``@register_model`` class + one import line here.
"""

from tdml.models.base import MODELS, Dims, Forecaster, TdmlModel, build_model, model_from_config  # noqa: F401
from tdml.models import dlinear, itransformer, mlp  # noqa: F401  (registration side effects)
from tdml.models import patchtst  # noqa: F401
from tdml.models import moderntcn  # noqa: F401
from tdml.models import timemixer  # noqa: F401
from tdml.models import micn  # noqa: F401
from tdml.models import autoformer  # noqa: F401
from tdml.models import fedformer  # noqa: F401
from tdml.models import timesnet  # noqa: F401
from tdml.models import lstm  # noqa: F401
from tdml.models import cnn  # noqa: F401
from tdml.models import lstm_forecaster  # noqa: F401
