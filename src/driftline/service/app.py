"""The FastAPI app factory.

``create_app(settings)`` builds an app whose lifespan starts a :class:`ServingRuntime` (store,
writer, registry, champion, batcher) and stops it gracefully (the writer drains its queue).
``driftline serve --workers N`` runs :func:`create_app_from_env` in each worker process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

import driftline
from driftline.config import Settings, check_access
from driftline.logs import configure_logging
from driftline.registry import Registry
from driftline.service.context import RequestContextMiddleware
from driftline.service.edge import HeaderCheckMiddleware
from driftline.service.errors import install_error_handlers
from driftline.service.metrics import ServiceMetrics
from driftline.service.routes import (
    audit,
    dashboard,
    health,
    labels,
    models,
    predict,
    predictions,
    reports,
    rollout,
    schema,
    summary,
    ws,
)
from driftline.service.runtime import ServingRuntime
from driftline.store import Store
from driftline.tracing import configure_tracing

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

DESCRIPTION = """
Serve the champion model, log every prediction off the hot path, join delayed labels, and
expose what happens as Prometheus metrics and a live WebSocket feed.

Errors: a request that does not fit the model's schema gets **422** with one entry per bad
field (`loc` names it) and repeats at most a short prefix of a bad value; **413** means the
body is larger than `DRIFTLINE_MAX_BODY_BYTES`; **503** with `Retry-After` means no model is
loaded yet or the prediction log is full. Access control (README "Access control"): admin
endpoints need `Authorization: Bearer <DRIFTLINE_ADMIN_TOKEN>`; `POST /labels` needs
`DRIFTLINE_LABELS_TOKEN` and reading logged traffic (`/predictions`, `/ws`, `/reports`,
`/alerts`, `/audit`, `/dashboard/state`) needs `DRIFTLINE_READ_TOKEN` when those are set (the
admin token also works).
"""


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
    metrics: ServiceMetrics | None = None,
) -> FastAPI:
    """Build the API. ``store``/``registry`` may be passed in (tests); otherwise they are
    opened from ``settings`` at start-up. Refuses (:class:`~driftline.errors.ConfigurationError`)
    settings whose access control is open by accident (see :func:`~driftline.config.check_access`).
    """
    check_access(settings)
    runtime = ServingRuntime(settings, store=store, registry=registry, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="driftline",
        version=driftline.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    install_error_handlers(app)
    routers = (
        predict,
        labels,
        health,
        predictions,
        models,
        schema,
        reports,
        rollout,
        audit,
        summary,
        ws,
    )
    for module in (*routers, dashboard):
        app.include_router(module.router)
    # Innermost first: the request context (and its metrics) see the 400s and 413s too.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes)
    app.add_middleware(HeaderCheckMiddleware)
    app.add_middleware(
        RequestContextMiddleware, access_log=settings.access_log, metrics=runtime.metrics
    )
    return app


def create_app_from_env() -> Any:
    """Factory for ``uvicorn --factory``: settings from ``DRIFTLINE_*`` variables."""
    settings = Settings()
    configure_logging(settings)
    configure_tracing(settings)
    return create_app(settings)
