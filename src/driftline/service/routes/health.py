"""GET /health (liveness), GET /ready (readiness), GET /metrics (Prometheus)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from driftline.service.deps import RuntimeDep
from driftline.service.metrics import CONTENT_TYPE_LATEST
from driftline.service.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse)
async def health(runtime: RuntimeDep) -> dict[str, Any]:
    """The process is alive (always 200 while it can answer)."""
    writer = runtime.writer
    return {
        "status": "ok",
        "worker": runtime.worker_id,
        "uptime_seconds": time.time() - runtime.started_at,
        "model_version": runtime.champion.version if runtime.champion else None,
        "store_up": bool(writer and writer.store_up),
        "queue_depth": writer.depth if writer else 0,
        "native_threads": {
            "per_worker": runtime.native_threads,
            "model": runtime.model_threads,
            "model_thread": runtime.native_thread_pools,
        },
    }


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "Not ready; reasons say why."}},
)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 when a model is loaded, the store answers and the store writer drains; 503 (with
    reasons) otherwise. The writer is not draining when a record has waited longer than
    ``DRIFTLINE_WRITER_MAX_UNWRITTEN_AGE_SECONDS`` for the store, or its thread is stuck."""
    reasons: list[str] = []
    loaded = runtime.champion is not None
    if not loaded:
        reasons.append("no champion model loaded")
    reachable = await runtime.store_reachable()
    if not reachable:
        reasons.append("store unreachable")
    reasons.extend(runtime.writer_problems())
    writer = runtime.writer
    body = {
        "ready": not reasons,
        "model_loaded": loaded,
        "store_reachable": reachable,
        "model_version": runtime.champion.version if runtime.champion else None,
        "writer_oldest_unwritten_seconds": writer.oldest_unwritten_age() if writer else 0.0,
        "reasons": reasons,
    }
    return JSONResponse(status_code=200 if not reasons else 503, content=body)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text exposition."""
    runtime.refresh_gauges()
    return Response(content=runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
