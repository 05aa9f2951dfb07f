"""One place that turns domain errors into HTTP answers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from driftline.errors import (
    ConfigurationError,
    DataError,
    DriftlineError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    RegistryError,
    StoreUnavailableError,
    ValidationError,
)

__all__ = ["install_error_handlers", "status_for"]

_STATUS: tuple[tuple[type[DriftlineError], int], ...] = (
    (ValidationError, 422),
    (ModelNotFoundError, 404),
    (NotReadyError, 503),
    (OverloadedError, 503),
    (StoreUnavailableError, 503),
    (RegistryError, 409),
    (DataError, 400),
    (ConfigurationError, 400),
)


def status_for(exc: DriftlineError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DriftlineError)
    async def _driftline_error(_request: Request, exc: DriftlineError) -> JSONResponse:
        status = status_for(exc)
        if isinstance(exc, ValidationError):
            return JSONResponse(status_code=status, content={"detail": exc.errors})
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)
