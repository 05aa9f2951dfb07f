"""driftline: drift-aware ML serving and monitoring.

Serve a model over a REST API, log every prediction off the hot path, join delayed labels, watch
data, prediction and concept drift, estimate performance before labels arrive, and retrain,
gate and roll out a challenger when the model degrades.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from driftline.errors import (
    ConfigurationError,
    DataError,
    DriftlineError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    PredictionError,
    RegistryError,
    StoreUnavailableError,
    ValidationError,
)

if TYPE_CHECKING:
    from driftline.comparison import (
        Comparison,
        compare,
        compare_datasets,
        estimate_performance,
        profile,
    )
    from driftline.config import Settings
    from driftline.schema import FeatureSchema, FeatureSpec, infer_schema

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "ConfigurationError",
    "DataError",
    "DriftlineError",
    "FeatureSchema",
    "FeatureSpec",
    "ModelNotFoundError",
    "NotReadyError",
    "OverloadedError",
    "PredictionError",
    "RegistryError",
    "Settings",
    "StoreUnavailableError",
    "ValidationError",
    "__version__",
    "compare",
    "compare_datasets",
    "estimate_performance",
    "infer_schema",
    "profile",
]

# The notebook API loads SciPy and the statistical core, the schema NumPy and pandas, the settings
# pydantic: on first use, so that `import driftline` (and with it `driftline --help`) stays quick.
# ``driftline.profile`` is the function; the profile classes live in the package
# ``driftline.profiles``.
_LAZY = {
    **{
        name: "driftline.comparison"
        for name in ("Comparison", "compare", "compare_datasets", "estimate_performance", "profile")
    },
    **{name: "driftline.schema" for name in ("FeatureSchema", "FeatureSpec", "infer_schema")},
    "Settings": "driftline.config",
}


def __getattr__(name: str) -> Any:
    """Load the notebook API on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
