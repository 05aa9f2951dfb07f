"""GET /alerts (built-in alerting) and GET /audit (every decision with its reasons)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from driftline.errors import ValidationError
from driftline.limits import MAX_ROW_ID, text_problem
from driftline.service.deps import SessionDep, require_read
from driftline.service.schemas import AlertsPage, AuditPage
from driftline.store import queries

router = APIRouter(tags=["alerts and audit"], dependencies=[Depends(require_read)])


@router.get("/alerts", response_model=AlertsPage)
def list_alerts(
    session: SessionDep,
    status: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> dict[str, Any]:
    """Alert episodes of the built-in alerting, newest first, with who was notified."""
    rows = queries.list_alerts(session=session, status=status, limit=limit, offset=offset)
    return {
        "items": [
            {
                "id": a.id,
                "name": a.name,
                "severity": a.severity,
                "status": a.status,
                "labels": a.labels,
                "summary": a.summary,
                "description": a.description,
                "value": a.value,
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
                "notified": a.notified,
            }
            for a in rows
        ],
        "limit": limit,
        "offset": offset,
    }


@router.get("/audit", response_model=AuditPage)
def list_audit(
    session: SessionDep,
    kind: Annotated[list[str] | None, Query(description="Only these kinds.")] = None,
    since: Annotated[
        float | None,
        Query(description="UNIX seconds; default the last 7 days.", allow_inf_nan=False),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Every trigger, gate decision, rollout step, promotion, rollback, alias move, drift
    report and alert, newest first, with its reasons and numbers."""
    for n, text in enumerate(kind or ()):
        problem = text_problem(text, max_length=64)
        if problem is not None:  # PostgreSQL refuses a NUL even in a query
            raise ValidationError(
                [{"loc": ["query", "kind", n], "msg": f"kind {problem}", "type": "value_error"}]
            )
    rows = queries.list_audit(
        session=session,
        kinds=kind,
        since=since if since is not None else time.time() - 7 * 86_400,
        limit=limit,
    )
    return {
        "items": [
            {
                "id": e.id,
                "ts": e.ts,
                "kind": e.kind,
                "actor": e.actor,
                "model_version": e.model_version,
                "message": e.message,
                "details": e.details,
                "success": e.success,
            }
            for e in rows
        ]
    }
