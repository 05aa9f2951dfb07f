"""GET /metrics/summary: requests, latency, errors, predicted classes, drift and accuracy."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from driftline.durations import parse_duration
from driftline.errors import ConfigurationError, ValidationError
from driftline.service import summary
from driftline.service.deps import RuntimeDep
from driftline.service.schemas import MetricsSummary

router = APIRouter(tags=["metrics"])

#: The longest window a summary reads (buckets are one row per worker and minute).
MAX_WINDOW_SECONDS = 7 * 86_400.0


@router.get("/metrics/summary", response_model=MetricsSummary)
async def metrics_summary(
    runtime: RuntimeDep,
    window: Annotated[
        str, Query(max_length=32, description="How much recent traffic, e.g. 15m, 1h, 1d.")
    ] = "1h",
) -> dict[str, Any]:
    """A JSON summary over WINDOW, the same on every replica: request count and rate, error
    rate, latency p50/p95/p99, the predicted-class distribution, and the latest monitor
    report's drift status and estimated/realized accuracy. Traffic of the last
    ``DRIFTLINE_MONITOR_FLUSH_SECONDS`` may not be in the store yet."""
    try:
        seconds = parse_duration(window, "window")
    except ConfigurationError as exc:
        raise ValidationError(
            [{"loc": ["query", "window"], "msg": str(exc), "type": "value_error"}]
        ) from exc
    if seconds > MAX_WINDOW_SECONDS:
        raise ValidationError(
            [
                {
                    "loc": ["query", "window"],
                    "msg": f"window must be at most 7d, got {window!r}",
                    "type": "value_error",
                }
            ]
        )
    return await run_in_threadpool(summary.metrics_summary, runtime, window_seconds=seconds)
