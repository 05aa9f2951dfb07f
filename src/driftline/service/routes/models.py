"""GET /models, and the admin endpoints that reload, promote and roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from driftline.errors import ValidationError
from driftline.registry import CHAMPION
from driftline.service.deps import AdminDep, RuntimeDep
from driftline.service.schemas import (
    AliasMoveRequest,
    AliasMoveResponse,
    ModelsResponse,
    ReloadResponse,
)

router = APIRouter(tags=["models"])

ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong admin token."},
    403: {"description": "Admin endpoints disabled (no DRIFTLINE_ADMIN_TOKEN)."},
}


@router.get("/models", response_model=ModelsResponse)
async def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    """Registered versions with their aliases and holdout metrics, and the alias history."""
    registry = runtime.registry
    versions = await run_in_threadpool(registry.versions)
    history = await run_in_threadpool(registry.history)
    return {
        "model_name": registry.model_name,
        "serving_version": runtime.champion.version if runtime.champion else None,
        "aliases": await run_in_threadpool(registry.aliases),
        "versions": [
            {
                "version": v.version,
                "kind": v.kind,
                "created": v.created,
                "aliases": list(v.aliases),
                "metrics": v.metrics,
            }
            for v in versions
        ],
        "history": [
            {
                "ts": m.ts,
                "alias": m.alias,
                "from_version": m.from_version,
                "to_version": m.to_version,
                "actor": m.actor,
                "reason": m.reason,
            }
            for m in history
        ],
    }


@router.post("/models/reload", response_model=ReloadResponse, responses=ADMIN)
async def reload_model(_admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Check the champion alias now (instead of at the next poll) and swap if it moved.

    Only the worker that answers reloads at once; the others follow within the poll interval.
    """
    reloaded = await runtime.check_for_new_model(reason="reload requested")
    return {
        "reloaded": reloaded,
        "model_version": runtime.champion.version if runtime.champion else None,
    }


@router.post("/models/promote", response_model=AliasMoveResponse, responses=ADMIN)
async def promote(body: AliasMoveRequest, _admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Make ``version`` the champion (recorded in the alias history and the audit log)."""
    if body.version is None:
        raise ValidationError(
            [{"loc": ["body", "version"], "msg": "version is required", "type": "missing"}]
        )
    before = await run_in_threadpool(
        runtime.registry.promote, body.version, actor="api", reason=body.reason
    )
    await runtime.check_for_new_model(reason="promoted")
    return {"alias": CHAMPION, "from_version": before, "to_version": body.version}


@router.post("/models/rollback", response_model=AliasMoveResponse, responses=ADMIN)
async def rollback(body: AliasMoveRequest, _admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Move the champion back to ``version``, or to the one that served before."""
    before, after = await run_in_threadpool(
        runtime.registry.rollback, body.version, actor="api", reason=body.reason
    )
    runtime.metrics.rollbacks.labels(actor="manual").inc()
    await runtime.check_for_new_model(reason="rolled back")
    return {"alias": CHAMPION, "from_version": before, "to_version": after}
