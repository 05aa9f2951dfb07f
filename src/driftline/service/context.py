"""The request context of every HTTP request: its id, its span, its metrics and its
access-log line.

The id comes from the client's ``X-Request-ID`` header when it is usable (1 to 128 visible
ASCII characters, :func:`driftline.limits.valid_request_id`), else it is generated;
``POST /predict`` adopts the body's ``request_id`` when the header is absent
(:func:`driftline.logs.adopt_request_id`; the body's id follows the same rule, so it can always
be echoed in a header). It is bound in a context variable
for the whole request, so every log line carries it, and echoed in the ``X-Request-ID`` header
of the answer.

The same middleware counts and times the request for Prometheus: both need the request's
status and duration, and one layer fewer on every request is measurable at thousands of
requests a second (each pure-ASGI layer wraps ``send`` once more).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftline import tracing
from driftline.logs import (
    RequestContext,
    bind_request,
    new_request_id,
    unbind_request,
    valid_request_id,
)

if TYPE_CHECKING:
    from driftline.service.metrics import ServiceMetrics

__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware"]

REQUEST_ID_HEADER = "x-request-id"

access_log = logging.getLogger("driftline.access")


class RequestContextMiddleware:
    """Binds the request id, opens the request's server span, counts and times the request
    per endpoint template in ``metrics`` (when given) and, when ``access_log`` is on, logs one
    line per request (pure ASGI: the handler runs in this task, so the context variable it may
    update is the one read here)."""

    def __init__(
        self, app: ASGIApp, *, access_log: bool = False, metrics: ServiceMetrics | None = None
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(REQUEST_ID_HEADER)
        if given is not None and valid_request_id(given):
            ctx = RequestContext(given, from_client=True)
        else:
            ctx = RequestContext(new_request_id())
        token = bind_request(ctx)
        method = scope["method"]
        path = scope.get("path", "")
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (REQUEST_ID_HEADER.encode(), ctx.request_id.encode("latin-1")),
                    ],
                }
            await send(message)

        with tracing.server_span(
            method, headers, {"http.request.method": method, "url.path": path}
        ) as span:
            # An exception leaves the id bound: the server logs it next, in this same task.
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                self._count(scope, method, status, started)
            route = getattr(scope.get("route"), "path", None)
            if span.is_recording():
                span.update_name(f"{method} {route}" if route else method)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("driftline.request_id", ctx.request_id)
                if route:
                    span.set_attribute("http.route", route)
                if status >= 500:
                    tracing.set_error(span, f"HTTP {status}")
        if self.access_log:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                path,
                status,
                elapsed_ms,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed_ms, 3),
                },
            )
        unbind_request(token)

    def _count(self, scope: Scope, method: str, status: int, started: float) -> None:
        """The request in the HTTP metrics, by endpoint template (an exception counts as 500)."""
        metrics = self.metrics
        if metrics is None:
            return
        endpoint = getattr(scope.get("route"), "path", None) or "unmatched"
        metrics.child(metrics.http_requests, endpoint, method, str(status)).inc()
        metrics.child(metrics.http_duration, endpoint).observe(time.perf_counter() - started)
