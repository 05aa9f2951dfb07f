"""driftline: drift-aware ML serving and monitoring.

Serve a model over a REST API, log every prediction off the hot path, join delayed labels, watch
data, prediction and concept drift, estimate performance before labels arrive, and retrain,
gate and roll out a challenger when the model degrades.
"""

from __future__ import annotations

from driftline.comparison import (
    Comparison,
    compare,
    compare_datasets,
    estimate_performance,
    profile,
)
from driftline.config import Settings
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
