"""The live dashboard: a static page (``index.html``, ``dashboard.js``, ``dashboard.css`` next to
this module, no build step) plus the JSON it starts from.

:func:`dashboard_state` gathers what the page shows in one answer: the models behind the
aliases, the rollout, traffic and latency per bucket of the last hour, the class shares of the
predictions (reference and recent), the per-feature drift verdicts of the latest reports (the
heatmap), estimated vs realized accuracy, open alerts and the audit timeline. The page then
follows the WebSocket (``/ws``) and asks again when a report, an alert, a model or a rollout
event says something changed.

Plotly's JavaScript ships inside the ``plotly`` Python package; :func:`plotly_js` serves that
file (and a gzip copy), so the page needs no CDN.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import zip_longest
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from driftline.monitoring.monitor import SEVERITY_CODE
from driftline.monitoring.window import profile_from_payload, quantile_from_histogram
from driftline.profiles import PREDICTION, CategoricalProfile, DatasetProfile
from driftline.registry import ALIASES, CHAMPION
from driftline.service.runtime import ServingRuntime
from driftline.store import queries

__all__ = [
    "ASSETS",
    "PlotlyJs",
    "asset_path",
    "dashboard_state",
    "index_html",
    "plotly_js",
    "read_rollout",
]

log = logging.getLogger(__name__)

#: Files of the page served under ``/dashboard/assets/``, with their media types.
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

#: How much the page shows at start: traffic history, reports in the heatmap, audit entries.
HISTORY_SECONDS = 3_600.0
HEATMAP_REPORTS = 40
AUDIT_ENTRIES = 60
ALERT_ENTRIES = 50


def asset_path(name: str) -> Path:
    """A file of the page, from the installed package."""
    return Path(str(resources.files(__name__).joinpath(name)))


def index_html() -> str:
    """The page, with the Plotly version in its script URL (so a new Plotly is a new URL)."""
    import plotly  # noqa: PLC0415 — Plotly only when the page is served

    page = asset_path("index.html").read_text(encoding="utf-8")
    return page.replace("{{plotly_version}}", str(plotly.__version__))


@dataclass(frozen=True)
class PlotlyJs:
    """``plotly.min.js`` as bytes, gzipped, and the ETag of both."""

    raw: bytes
    gzipped: bytes
    etag: str


@functools.cache
def plotly_js() -> PlotlyJs:
    """Plotly's bundled ``plotly.min.js`` (read and compressed once per process)."""
    import plotly  # noqa: PLC0415 — Plotly only when the page is served

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return PlotlyJs(raw=raw, gzipped=gzip.compress(raw, 6, mtime=0), etag=f'"{digest}"')


# --- rollout: read from GET /rollout when some router provides it ------------------------------


def _has_route(app: Any, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in getattr(app, "routes", ()))


async def read_rollout(app: ASGIApp, *, timeout: float = 5.0) -> dict[str, Any] | None:
    """What ``GET /rollout`` says, asked in-process; ``None`` when there is no rollout (no such
    route, or it answers 404). Any other answer becomes ``{"error": ...}``: the page shows it,
    it never fails because of it. Asking here (not from the browser) keeps expected 404s out
    of the browser's console."""
    if not _has_route(app, "/rollout"):
        return None
    import httpx  # noqa: PLC0415 — httpx only for apps with /rollout

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
            response = await asyncio.wait_for(client.get("/rollout"), timeout)
    except Exception as exc:
        log.debug("GET /rollout failed: %s", exc)
        return {"error": f"GET /rollout failed: {type(exc).__name__}"}
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        return {"error": f"GET /rollout answered {response.status_code}"}
    try:
        body = response.json()
    except ValueError:
        return {"error": "GET /rollout did not answer JSON"}
    return body if isinstance(body, dict) else {"error": "GET /rollout did not answer an object"}


# --- the state -----------------------------------------------------------------------------------


def dashboard_state(
    runtime: ServingRuntime, *, rollout: dict[str, Any] | None, now: float | None = None
) -> dict[str, Any]:
    """Everything the page shows at start (blocking: store and registry; run in a thread)."""
    now = time.time() if now is None else now
    settings = runtime.settings
    with runtime.store.sessions() as session:
        buckets = queries.buckets(session=session, start=now - HISTORY_SECONDS)
        reports = queries.list_reports(
            session=session, model_name=settings.model_name, limit=HEATMAP_REPORTS
        )
        alerts = queries.list_alerts(session=session, status="firing", limit=ALERT_ENTRIES)
        audit = queries.list_audit(session=session, limit=AUDIT_ENTRIES)
    reports = list(reversed(reports))  # oldest first, as charts read
    return {
        "ts": now,
        "model_name": settings.model_name,
        "worker": runtime.worker_id,
        "models": models_state(runtime),
        "rollout": rollout,
        "traffic": traffic_state(buckets, bucket_seconds=settings.monitor_bucket_seconds, now=now),
        "classes": class_state(runtime, buckets),
        "heatmap": drift_heatmap([r.body | {"id": r.id} for r in reports]),
        "accuracy": accuracy_series([r.body | {"id": r.id} for r in reports]),
        "latest_report": _latest_report(reports[-1] if reports else None),
        "alerts": [
            {
                "id": a.id,
                "name": a.name,
                "severity": a.severity,
                "summary": a.summary,
                "description": a.description,
                "value": a.value,
                "starts_at": a.starts_at,
                "labels": a.labels,
            }
            for a in alerts
        ],
        "audit": [
            {
                "id": e.id,
                "ts": e.ts,
                "kind": e.kind,
                "actor": e.actor,
                "model_version": e.model_version,
                "message": e.message,
                "success": e.success,
            }
            for e in audit
        ],
        "settings": {
            "monitor_interval_seconds": settings.monitor_interval_seconds,
            "bucket_seconds": settings.monitor_bucket_seconds,
            "ws_max_events_per_second": settings.ws_max_events_per_second,
        },
    }


def models_state(runtime: ServingRuntime) -> dict[str, Any]:
    """The version behind each alias (kind, holdout metrics) and the one this worker serves."""
    registry = runtime.registry
    try:
        versions = {v.version: v for v in registry.versions()}
        aliases = registry.aliases()
    except Exception as exc:  # the registry is down: say so, keep the rest of the page
        log.warning("dashboard: registry unavailable: %s", exc)
        versions, aliases = {}, {}
    champion = runtime.champion
    out: dict[str, Any] = {
        "serving_version": champion.version if champion is not None else None,
        "versions": len(versions),
    }
    for alias in ALIASES:
        version = aliases.get(alias)
        info = versions.get(version) if version is not None else None
        out[alias] = (
            None
            if version is None
            else {
                "version": version,
                "kind": info.kind if info is not None else None,
                "created": info.created if info is not None else None,
                "metrics": dict(info.metrics) if info is not None else {},
            }
        )
    if out[CHAMPION] is None and champion is not None and champion.version is not None:
        out[CHAMPION] = {"version": champion.version, "kind": champion.kind, "metrics": {}}
    return out


def traffic_state(
    buckets: Iterable[queries.BucketRow], *, bucket_seconds: float, now: float
) -> dict[str, Any]:
    """Requests per second, error rate and latency quantiles of every closed bucket (summed
    over workers, versions and the variants that answer; shadow traffic answers nobody).

    Each bucket's own width counts (``payload["seconds"]``; ``bucket_seconds`` for buckets
    written before it was stored): a home that ran the demo's 5-second buckets and then a
    server's 60-second ones charts the right rate for both."""
    requests: dict[tuple[float, float], int] = {}
    errors: dict[tuple[float, float], int] = {}
    latency: dict[tuple[float, float], list[int]] = {}
    for row in buckets:
        width = float(row.payload.get("seconds") or bucket_seconds)
        if row.variant == "shadow" or row.bucket_start + width > now:
            continue  # the open bucket is still filling up: the live feed covers it
        start, payload = (row.bucket_start, width), row.payload
        requests[start] = requests.get(start, 0) + int(payload.get("requests", 0))
        errors[start] = errors.get(start, 0) + int(payload.get("errors", 0))
        counts = [int(c) for c in payload.get("latency", [])]
        before = latency.get(start)
        latency[start] = (
            counts
            if before is None
            else [a + b for a, b in zip_longest(before, counts, fillvalue=0)]
        )
    starts = sorted(requests)
    return {
        "bucket_seconds": bucket_seconds,
        "ts": [start + width / 2 for start, width in starts],
        "width_seconds": [width for _, width in starts],
        "rps": [requests[(start, width)] / width for start, width in starts],
        "error_rate": [
            errors[start] / requests[start] if requests[start] else 0.0 for start in starts
        ],
        "p50_ms": [_finite(quantile_from_histogram(latency[start], 0.5)) for start in starts],
        "p95_ms": [_finite(quantile_from_histogram(latency[start], 0.95)) for start in starts],
    }


def class_state(runtime: ServingRuntime, buckets: Sequence[queries.BucketRow]) -> dict[str, Any]:
    """Predicted-class counts of the last hour (all workers) and the reference's shares."""
    recent: dict[str, int] = {}
    for row in buckets:
        outputs = row.payload.get("outputs")
        if row.variant == "shadow" or not outputs:
            continue
        try:
            counts = _class_counts(profile_from_payload(outputs))
        except Exception as exc:  # a payload this version cannot read: leave it out
            log.debug("dashboard: bucket outputs unreadable: %s", exc)
            continue
        for name, count in counts.items():
            recent[name] = recent.get(name, 0) + count
    reference: dict[str, float] = {}
    champion = runtime.champion
    if champion is not None:
        ref = runtime.recorder.reference(champion)
        counts = _class_counts(ref.outputs if ref is not None else None)
        total = sum(counts.values())
        reference = {k: v / total for k, v in counts.items()} if total else {}
    return {"recent": recent, "reference": reference}


def _class_counts(profile: DatasetProfile | None) -> dict[str, int]:
    if profile is None:
        return {}
    column = profile.features.get(PREDICTION)
    if not isinstance(column, CategoricalProfile):
        return {}
    names = [*column.categories, "(unseen)"]
    return {
        n: int(c)
        for n, c in zip(names, column.counts.tolist(), strict=True)
        if c or n != "(unseen)"
    }


def drift_heatmap(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-feature drift verdicts over reports (oldest first): ``z[feature][report]`` is the
    severity code (-1 too little data to test, 0 none, 1 warning, 2 critical; None when the
    report did not list the feature),
    ``effect``/``p_adjusted`` what the decision was made on."""
    features: list[str] = []
    for report in reports:
        for f in (report.get("data_drift") or {}).get("features", []):
            if f["feature"] not in features:
                features.append(f["feature"])
    index = {name: i for i, name in enumerate(features)}
    z: list[list[int | None]] = [[None] * len(reports) for _ in features]
    effect: list[list[float | None]] = [[None] * len(reports) for _ in features]
    p_adjusted: list[list[float | None]] = [[None] * len(reports) for _ in features]
    effect_name: list[list[str | None]] = [[None] * len(reports) for _ in features]
    for j, report in enumerate(reports):
        for f in (report.get("data_drift") or {}).get("features", []):
            i = index[f["feature"]]
            z[i][j] = SEVERITY_CODE.get(f.get("severity", ""), -1)
            effect[i][j] = f.get("effect_size")
            p_adjusted[i][j] = f.get("p_adjusted")
            effect_name[i][j] = f.get("effect_name")
    return {
        "features": features,
        "reports": [report.get("id") for report in reports],
        "ts": [report.get("ts") for report in reports],
        "status": [report.get("status") for report in reports],
        "z": z,
        "effect": effect,
        "effect_name": effect_name,
        "p_adjusted": p_adjusted,
    }


def accuracy_series(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Estimated (label-free) and realized accuracy per report, and the reference's."""
    series: dict[str, list[Any]] = {
        "ts": [],
        "estimated": [],
        "estimator": [],
        "estimator_reason": [],
        "realized": [],
        "labeled": [],
    }
    reference: float | None = None
    for report in reports:
        performance = report.get("performance") or {}
        estimated = performance.get("estimated") or {}
        realized = performance.get("realized") or {}
        series["ts"].append(report.get("ts"))
        series["estimated"].append(estimated.get("accuracy"))
        # Which estimator produced each estimated accuracy (reports before the field: CBPE).
        series["estimator"].append(
            performance.get("estimator") or ("cbpe" if estimated else None)
        )
        series["estimator_reason"].append(performance.get("estimator_reason"))
        series["realized"].append(realized.get("accuracy"))
        series["labeled"].append(realized.get("n"))
        if performance.get("reference_accuracy") is not None:
            reference = performance["reference_accuracy"]
    return {**series, "reference": reference}


def _latest_report(row: queries.ReportRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    drift = row.body.get("data_drift") or {}
    return {
        "id": row.id,
        "ts": row.ts,
        "status": row.status,
        "model_version": row.model_version,
        "rows": row.body.get("rows"),
        "data_drift": drift.get("severity"),
        "drifted_features": [
            f["feature"]
            for f in drift.get("features", [])
            if f.get("severity") in ("warning", "critical")
        ],
        "prediction_drift": (row.body.get("prediction_drift") or {}).get("severity"),
        "concept_drift": (row.body.get("concept_drift") or {}).get("state"),
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
