"""GET /reports, /reports/latest, /reports/{id}; POST /reports/run (admin)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from driftline.limits import MAX_ROW_ID
from driftline.service.deps import AdminDep, RuntimeDep, SessionDep, require_read
from driftline.service.routes.models import ADMIN
from driftline.service.schemas import ReportOut, ReportsPage
from driftline.store import queries

# Reports are computed from logged features: reading them needs the read permission.
router = APIRouter(tags=["monitoring"], dependencies=[Depends(require_read)])


#: How many earlier reports the HTML page charts over time.
HTML_HISTORY = 100

FormatQuery = Annotated[
    Literal["json", "html"] | None,
    Query(
        description="json or html (the `driftline report` page). Default: html when the "
        "client asks for text/html (a browser), else json."
    ),
]
#: Both representations of a whole report, for the OpenAPI document.
BOTH: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}}
}


def _wants_html(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "html"
    return "text/html" in request.headers.get("accept", "")


def _page(row: queries.ReportRow, session: Any, model_name: str) -> HTMLResponse:
    from driftline.monitoring.html import render_report_html  # noqa: PLC0415 — Plotly only when asked for

    history = queries.list_reports(session=session, model_name=model_name, limit=HTML_HISTORY)
    body = {**row.body, "id": row.id}
    return HTMLResponse(render_report_html(body, [r.body for r in history] or [body]))


def summary(row: queries.ReportRow) -> dict[str, Any]:
    """The headline figures of a report."""
    body = row.body
    performance = body.get("performance") or {}
    estimated = performance.get("estimated") or {}
    realized = performance.get("realized") or {}
    drift = body.get("data_drift") or {}
    return {
        "id": row.id,
        "ts": row.ts,
        "model_version": row.model_version,
        "status": row.status,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "rows": body.get("rows"),
        "data_drift": drift.get("severity"),
        "drifted_features": [
            f["feature"]
            for f in drift.get("features", [])
            if f.get("severity") in ("warning", "critical")
        ],
        "prediction_drift": (body.get("prediction_drift") or {}).get("severity"),
        "quality": (body.get("quality") or {}).get("severity"),
        "estimated_accuracy": estimated.get("accuracy"),
        "realized_accuracy": realized.get("accuracy"),
        "reference_accuracy": performance.get("reference_accuracy"),
        "concept_drift": (body.get("concept_drift") or {}).get("state"),
    }


@router.get("/reports", response_model=ReportsPage)
def list_reports(
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> dict[str, Any]:
    """Monitor reports, newest first, as headline figures (full bodies at /reports/{id})."""
    rows = queries.list_reports(
        session=session, model_name=runtime.settings.model_name, limit=limit, offset=offset
    )
    return {"items": [summary(r) for r in rows], "limit": limit, "offset": offset}


@router.get(
    "/reports/latest",
    response_model=ReportOut,
    responses={**BOTH, 404: {"description": "No report yet."}},
)
def latest_report(
    request: Request, session: SessionDep, runtime: RuntimeDep, format: FormatQuery = None
) -> Any:
    """The newest report, whole: per-feature drift, prediction drift, quality, estimated
    and realized performance, concept-drift state, distributions. A browser (or
    ``?format=html``) gets the self-contained HTML page of `driftline report`."""
    row = queries.latest_report(session=session, model_name=runtime.settings.model_name)
    if row is None:
        raise HTTPException(
            404,
            "no report yet: the monitor runs every "
            f"{runtime.settings.monitor_interval_seconds:.0f}s, or run "
            "`driftline check`",
        )
    if _wants_html(request, format):
        return _page(row, session, runtime.settings.model_name)
    return {**row.body, "id": row.id}


@router.get(
    "/reports/{report_id}",
    response_model=ReportOut,
    responses={**BOTH, 404: {"description": "No such report."}},
)
def get_report(
    report_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    format: FormatQuery = None,
) -> Any:
    """One report, whole (JSON), or its HTML page for a browser or ``?format=html``."""
    row = queries.get_report(report_id, session=session)
    if row is None:
        raise HTTPException(404, f"no report {report_id}")
    if _wants_html(request, format):
        return _page(row, session, runtime.settings.model_name)
    return {**row.body, "id": row.id}


@router.post(
    "/reports/run",
    response_model=ReportOut,
    responses={**ADMIN, 409: {"description": "No champion to monitor yet."}},
)
async def run_report(_admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Run the monitor now (on this worker) and return the new report."""
    body = await run_in_threadpool(runtime.jobs.monitor)
    if body is None:
        raise HTTPException(409, "no champion to monitor yet")
    return body
