"""What the HTTP edge refuses before any route runs: an over-long body, a malformed header.

The body cap is Starlette's own :class:`~starlette.middleware.body_limit.RequestBodyLimitMiddleware`
(``DRIFTLINE_MAX_BODY_BYTES``): 413 when ``Content-Length`` says too much, and also when a
chunked body without one grows past the cap while it is read. :class:`HeaderCheckMiddleware`
answers 400 to an ``Authorization`` header that is not printable ASCII (what a bearer token
is), instead of letting it reach a comparison that cannot take it.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HeaderCheckMiddleware"]


def _printable_ascii(value: bytes) -> bool:
    return all(0x20 <= b <= 0x7E for b in value)


class HeaderCheckMiddleware:
    """400 for an ``Authorization`` header with bytes outside printable ASCII (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name.lower() == b"authorization" and not _printable_ascii(value):
                    await _reject(send, "the Authorization header must be printable ASCII")
                    return
        await self.app(scope, receive, send)


async def _reject(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
