"""One exception tree. Every error driftline raises on purpose is a :class:`DriftlineError`.

The service maps these to HTTP in one handler (``service/errors.py``); the CLI prints them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "DataError",
    "DriftlineError",
    "EntityNotFoundError",
    "FeatureStoreUnavailableError",
    "ModelNotFoundError",
    "NotReadyError",
    "OverloadedError",
    "PredictionError",
    "RegistryError",
    "StoreUnavailableError",
    "ValidationError",
]


class DriftlineError(Exception):
    """Base class of all driftline errors."""


class ConfigurationError(DriftlineError):
    """Settings or arguments that cannot work together."""


class DataError(DriftlineError):
    """A dataset that cannot be used (missing file, missing target column, too few rows...)."""


class ValidationError(DriftlineError):
    """A request that does not fit the feature schema.

    ``errors`` lists every bad field in FastAPI's shape:
    ``{"loc": [...], "msg": ..., "type": ...}``.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        super().__init__(f"{len(errors)} invalid field(s): {fields}")


class RegistryError(DriftlineError):
    """The model registry refused or failed an operation."""


class ModelNotFoundError(RegistryError):
    """No such model version or alias."""


class NotReadyError(DriftlineError):
    """The service has no model loaded yet."""


class OverloadedError(DriftlineError):
    """The prediction-log queue stayed full: the request is refused rather than left unlogged."""


class PredictionError(DriftlineError):
    """The model failed on a request that passed validation (answered 500)."""


class StoreUnavailableError(DriftlineError):
    """The store cannot be reached (records are spilled to disk meanwhile)."""


class EntityNotFoundError(DriftlineError):
    """A request's entity is not in the Feast online store (answered 404, naming it)."""

    def __init__(
        self,
        message: str,
        *,
        entities: dict[str, Any] | None = None,
        views: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.entities = entities or {}
        self.views = views or []


class FeatureStoreUnavailableError(DriftlineError):
    """The Feast feature store cannot answer (answered 503: no prediction on half the
    features)."""
