"""One place that turns domain errors into HTTP answers.

A 422 names every bad field (``loc``) and repeats at most a short prefix of a bad value
(``input``, :data:`~driftline.limits.ECHO_LENGTH` characters), in a form JSON can carry: a NaN
comes back as the text ``"nan"``, a lone surrogate as an escape. A client's huge or hostile
value can neither blow up the answer nor make it fail to serialise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from driftline.errors import (
    ConfigurationError,
    DataError,
    DriftlineError,
    EntityNotFoundError,
    FeatureStoreUnavailableError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    RegistryError,
    StoreUnavailableError,
    ValidationError,
)
from driftline.limits import NAME_ECHO_LENGTH, echo

__all__ = ["install_error_handlers", "safe_errors", "status_for"]

_STATUS: tuple[tuple[type[DriftlineError], int], ...] = (
    (ValidationError, 422),
    (ModelNotFoundError, 404),
    (EntityNotFoundError, 404),
    (FeatureStoreUnavailableError, 503),
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


def _safe_error(error: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "loc": [echo(part, NAME_ECHO_LENGTH) for part in error.get("loc", ())],
        "msg": echo(str(error.get("msg", "")), 500),
        "type": echo(str(error.get("type", "")), NAME_ECHO_LENGTH),
    }
    if "input" in error:
        out["input"] = echo(error["input"])
    ctx = error.get("ctx")
    if isinstance(ctx, Mapping):
        # The limits (le, max_length...); an exception in it repeats ``msg``.
        limits = {str(k): echo(v) for k, v in ctx.items() if isinstance(v, int | float | str)}
        if limits:
            out["ctx"] = limits
    return out


def safe_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as a 422 may carry them: every part JSON-safe, values cut short.

    >>> safe_errors([{"loc": ["body", "x"], "msg": "bad", "type": "t", "input": float("nan")}])
    [{'loc': ['body', 'x'], 'msg': 'bad', 'type': 't', 'input': 'nan'}]
    """
    return [_safe_error(e) for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": safe_errors(exc.errors())})

    @app.exception_handler(DriftlineError)
    async def _driftline_error(_request: Request, exc: DriftlineError) -> JSONResponse:
        status = status_for(exc)
        if isinstance(exc, ValidationError):
            return JSONResponse(status_code=status, content={"detail": safe_errors(exc.errors)})
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)
