"""GET /schema: the served model's features, with a summary of their reference distribution
(what `driftline loadtest` draws realistic requests from)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from driftline.loadtest import describe_features
from driftline.service.deps import ChampionDep, RuntimeDep
from driftline.service.schemas import SchemaResponse

router = APIRouter(tags=["models"])


@router.get(
    "/schema",
    response_model=SchemaResponse,
    responses={503: {"description": "No champion loaded yet."}},
)
async def feature_schema(champion: ChampionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The champion's feature schema (names, kinds, ranges, categories, target, classes) and,
    per feature, the quantiles or value frequencies and the missing share of its training
    reference. Aggregates only: no training row is returned."""
    described = await run_in_threadpool(describe_features, champion.schema, champion.reference)
    return {"model_name": runtime.registry.model_name, "version": champion.version, **described}
