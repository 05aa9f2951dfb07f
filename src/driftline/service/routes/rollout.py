"""GET /rollout, and the admin endpoints that start or abort one by hand."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from driftline.errors import DriftlineError
from driftline.limits import MAX_VERSION
from driftline.loop.controller import abort_rollout, read_rollout, start_rollout
from driftline.service.deps import AdminDep, RuntimeDep
from driftline.service.routes.models import ADMIN
from driftline.service.schemas import ReasonText, RolloutOut, RolloutState

router = APIRouter(tags=["loop"])

ROLLOUT_ERRORS: dict[int | str, dict[str, Any]] = {
    **ADMIN,
    409: {"description": "The rollout cannot start or stop now; detail says why."},
}


class RolloutStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_VERSION, description="The registered version to roll out.")
    stage: Literal["shadow", "canary"] = Field(
        default="shadow", description="Where to start: shadow (safe) or straight to canary."
    )


class RolloutAbort(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ReasonText = "aborted by hand"


@router.get(
    "/rollout",
    response_model=RolloutOut,
    responses={404: {"description": "No rollout has run yet."}},
)
async def get_rollout(runtime: RuntimeDep) -> dict[str, Any]:
    """The current (or last) rollout: stage, champion and challenger versions, canary share,
    the last verdict with its numbers, and the stage history. Every worker reads the same
    state from the store; ``serving`` says what this worker does with it."""
    state = await run_in_threadpool(read_rollout, runtime.store, runtime.settings.model_name)
    if state is None:
        raise HTTPException(status_code=404, detail="no rollout has run yet")
    history = state.get("history") or [{}]
    challenger = runtime.routing.challenger
    return {
        **state,
        "started_at": state.get("stage_started_ts"),
        "reason": "; ".join(history[-1].get("reasons", [])),
        "serving": {
            "champion": runtime.champion.version if runtime.champion else None,
            "challenger": challenger.version if challenger else None,
            "canary_share": runtime.routing.canary_share,
        },
    }


@router.post("/rollout/start", response_model=RolloutState, responses=ROLLOUT_ERRORS)
async def post_rollout_start(
    body: RolloutStart, _admin: AdminDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Roll out a registered version by hand (it skips the gate: you are the gate)."""
    try:
        return await run_in_threadpool(
            start_rollout,
            runtime.store,
            runtime.registry,
            runtime.settings,
            challenger=body.version,
            actor="api",
            stage=body.stage,
        )
    except DriftlineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc


@router.post("/rollout/abort", response_model=RolloutState, responses=ROLLOUT_ERRORS)
async def post_rollout_abort(
    body: RolloutAbort, _admin: AdminDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Withdraw the challenger of the rollout in shadow or canary."""
    try:
        return await run_in_threadpool(
            abort_rollout,
            runtime.store,
            runtime.registry,
            runtime.settings,
            actor="api",
            reason=body.reason,
        )
    except DriftlineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
