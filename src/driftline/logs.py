"""Logging set-up: human-readable text by default, one JSON object per line as an option.

Every line logged while an HTTP request is handled carries that request's id (``request_id``):
the HTTP layer binds it in a context variable (:func:`bind_request`) and a filter on the
handler copies it onto each record.

>>> ctx = RequestContext("flow-42", from_client=True)
>>> token = bind_request(ctx)
>>> current_request_id()
'flow-42'
>>> adopt_request_id("order-7")  # the client's header wins over a body's id
'order-7'
>>> current_request_id()
'flow-42'
>>> unbind_request(token)
>>> current_request_id() is None
True
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from driftline.limits import MAX_REQUEST_ID_LENGTH, escape_control, valid_request_id

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "JsonFormatter",
    "RequestContext",
    "RequestIdFilter",
    "TextFormatter",
    "adopt_request_id",
    "bind_request",
    "configure_logging",
    "current_request_id",
    "new_request_id",
    "unbind_request",
    "valid_request_id",
]



def new_request_id() -> str:
    """A fresh request id: 32 hex digits."""
    return uuid.uuid4().hex


@dataclass
class RequestContext:
    """The request being handled: its id, and whether the client chose it (``X-Request-ID``)."""

    request_id: str
    from_client: bool = False


_REQUEST: ContextVar[RequestContext | None] = ContextVar("driftline_request", default=None)


def bind_request(ctx: RequestContext) -> Token[RequestContext | None]:
    """Make ``ctx`` the current request (until :func:`unbind_request` with the token)."""
    return _REQUEST.set(ctx)


def unbind_request(token: Token[RequestContext | None]) -> None:
    _REQUEST.reset(token)


def current_request_id() -> str | None:
    """The id of the request being handled, ``None`` outside a request."""
    ctx = _REQUEST.get()
    return ctx.request_id if ctx is not None else None


def adopt_request_id(request_id: str | None) -> str | None:
    """A request body's own id becomes the request's id unless the client sent
    ``X-Request-ID``. Returns the id the body's record should carry: its own, else the
    request's (``None`` outside a request)."""
    ctx = _REQUEST.get()
    if ctx is None:
        return request_id
    if request_id is None:
        return ctx.request_id
    if not ctx.from_client:
        ctx.request_id = request_id
    return request_id


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is handled (unless the
    record already has one, from ``extra={"request_id": ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            ctx = _REQUEST.get()
            if ctx is not None:
                record.request_id = ctx.request_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any ``extra={...}`` fields (e.g. ``request_id``)."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message``, with ``[request id]`` before the message in a request.

    Control characters in the message and the id are escaped (``\\r``, ``\\n``...): a
    client's text (a URL path, a value) can never start a forged line.
    """

    _PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    _WITH_ID = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

    def __init__(self) -> None:
        super().__init__(self._PLAIN)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        values = {**vars(record), "message": escape_control(record.message)}
        request_id = values.get("request_id")
        if request_id is None:
            return self._PLAIN % values
        values["request_id"] = escape_control(str(request_id))
        return self._WITH_ID % values


def configure_logging(settings: Any) -> None:
    """Configure the root logger from ``settings.log_format`` and ``settings.log_level``."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
