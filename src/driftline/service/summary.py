"""``GET /metrics/summary``: one JSON answer to "how is the model doing?" over a window.

Traffic, error rate and latency percentiles come from the window buckets of every worker (the
store), so every replica answers the same; drift and accuracy from the latest monitor report.
Prometheus (``/metrics``) remains the place for time series; this is for people and scripts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from itertools import zip_longest
from typing import Any

from driftline.monitoring.window import profile_from_payload, quantile_from_histogram
from driftline.profiles import PREDICTION, CategoricalProfile
from driftline.service.runtime import ServingRuntime
from driftline.store import queries

__all__ = ["metrics_summary", "traffic_summary"]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def traffic_summary(
    buckets: Iterable[queries.BucketRow], *, window_seconds: float, now: float
) -> dict[str, Any]:
    """Requests, errors, rejections, latency percentiles and predicted classes, summed over
    workers, versions and the variants that answer (shadow traffic answers nobody). The rate
    is over the part of the window that has buckets (a server up for 5 minutes of a 1-hour
    window is not averaged over the hour)."""
    requests = errors = rejected = 0
    first: float | None = None
    latency: list[int] = []
    classes: dict[str, int] = {}
    for row in buckets:
        if row.variant == "shadow":
            continue
        payload = row.payload
        first = row.bucket_start if first is None else min(first, row.bucket_start)
        requests += int(payload.get("requests", 0))
        errors += int(payload.get("errors", 0))
        rejected += int(payload.get("rejected", 0))
        counts = [int(c) for c in payload.get("latency", [])]
        latency = [a + b for a, b in zip_longest(latency, counts, fillvalue=0)]
        outputs = payload.get("outputs")
        if outputs:
            column = profile_from_payload(outputs).features.get(PREDICTION)
            if isinstance(column, CategoricalProfile):
                names = [*column.categories, "(unseen)"]
                for name, count in zip(names, column.counts.tolist(), strict=True):
                    if count:
                        classes[name] = classes.get(name, 0) + int(count)
    predicted = sum(classes.values())
    covered = min(window_seconds, now - first) if first is not None else 0.0
    return {
        "requests": requests,
        "errors": errors,
        "rejected": rejected,
        "error_rate": errors / requests if requests else None,
        "requests_per_second": requests / covered if covered > 0 else None,
        "latency_ms": {
            name: _finite(quantile_from_histogram(latency, q)) if latency else None
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "predictions": {
            "total": predicted,
            "counts": classes,
            "shares": {k: v / predicted for k, v in classes.items()} if predicted else {},
        },
    }


def _report_summary(row: queries.ReportRow | None) -> tuple[dict[str, Any], dict[str, Any]]:
    if row is None:
        return {"status": None, "report_id": None}, {}
    body = row.body
    data = body.get("data_drift") or {}
    prediction = body.get("prediction_drift") or {}
    drift = {
        "status": row.status,
        "report_id": row.id,
        "report_ts": row.ts,
        "data_drift": data.get("severity"),
        "drifted_features": [
            f["feature"]
            for f in data.get("features", [])
            if f.get("severity") in ("warning", "critical")
        ],
        "prediction_drift": prediction.get("severity"),
        "quality": (body.get("quality") or {}).get("severity"),
        "concept_drift": (body.get("concept_drift") or {}).get("state"),
    }
    performance = body.get("performance") or {}
    estimated = performance.get("estimated") or {}
    realized = performance.get("realized") or {}
    accuracy = {
        "reference": performance.get("reference_accuracy"),
        "estimated": estimated.get("accuracy"),
        # Which estimator produced it: "doubly_robust" or "cbpe" (older reports: CBPE).
        "estimator": performance.get("estimator") or ("cbpe" if estimated else None),
        "estimated_lower": estimated.get("accuracy_lower"),
        "estimated_upper": estimated.get("accuracy_upper"),
        "realized": realized.get("accuracy"),
        "realized_n": realized.get("n"),
    }
    return drift, accuracy


def metrics_summary(
    runtime: ServingRuntime, *, window_seconds: float, now: float | None = None
) -> dict[str, Any]:
    """The summary over the last ``window_seconds`` (blocking: reads the store)."""
    now = time.time() if now is None else now
    with runtime.store.sessions() as session:
        rows = queries.buckets(session=session, start=now - window_seconds, end=now + 1)
        latest = queries.latest_report(session=session, model_name=runtime.settings.model_name)
    drift, accuracy = _report_summary(latest)
    champion = runtime.champion
    return {
        "ts": now,
        "window_seconds": window_seconds,
        "model_name": runtime.settings.model_name,
        "model_version": champion.version if champion is not None else None,
        "traffic": traffic_summary(rows, window_seconds=window_seconds, now=now),
        "drift": drift,
        "accuracy": accuracy,
    }
