"""POST /predict and POST /predict/batch."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from driftline.errors import ValidationError
from driftline.logs import adopt_request_id, new_request_id
from driftline.service.deps import ChampionDep, RuntimeDep, champion_of
from driftline.service.prediction import entity_features, predict_and_log, validate_records
from driftline.service.runtime import ServingRuntime
from driftline.service.schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "An entity sent in `entities` is not in the Feast online store."},
    422: {"description": "A field does not fit the model's schema; every bad field is named."},
    503: {
        "description": "No model loaded yet, the prediction log is full, or the Feast "
        "feature store cannot be reached (Retry-After)."
    },
}


@router.post("/predict", response_model=PredictResponse, responses=ERRORS)
async def predict(body: PredictRequest, request: Request) -> Any:
    """Predict one row with the champion (or the canary, during a rollout)."""
    # The runtime and the champion are read here rather than through dependencies: FastAPI
    # spends ~0.1 ms per request resolving each dependency, the single largest cost of the
    # framework on this route (cProfile, README "Serving benchmark").
    started = time.perf_counter()
    runtime: ServingRuntime = request.app.state.runtime
    champion = champion_of(runtime)
    request_id = adopt_request_id(body.request_id)  # also the X-Request-ID of the answer
    bundle = runtime.routing.route(champion, body.routing_key or request_id)
    [features] = await entity_features(
        runtime, bundle, [body.entities], [body.features], [("body",)], endpoint="/predict"
    )
    records = validate_records(
        runtime, bundle, [features], [("body", "features")], endpoint="/predict"
    )
    [answer] = await predict_and_log(
        runtime, bundle, records, [request_id], source="api", started=started
    )
    return rendered(answer)


def rendered(answer: dict[str, Any]) -> Any:
    """The answer as a ready JSON response: the values are plain JSON already (``str``,
    ``int``, ``float``, ``bool``), so re-validating them through the response model only costs
    time on every request. An answer plain ``json`` cannot write (a NaN probability) goes back
    through the response model as before."""
    try:
        body = json.dumps(answer, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return answer
    return Response(body.encode(), media_type="application/json")


@router.post("/predict/batch", response_model=BatchPredictResponse, responses=ERRORS)
async def predict_batch(
    body: BatchPredictRequest, runtime: RuntimeDep, champion: ChampionDep
) -> dict[str, Any]:
    """Predict many rows in one model call; the answers keep the order of ``instances``."""
    started = time.perf_counter()
    limit = runtime.settings.max_batch_size
    if len(body.instances) > limit:
        runtime.metrics.rejected.labels(endpoint="/predict/batch", reason="too_long").inc()
        raise ValidationError(
            [
                {
                    "loc": ["body", "instances"],
                    "msg": f"batch of {len(body.instances)} rows exceeds the limit of {limit} "
                    "(DRIFTLINE_MAX_BATCH_SIZE)",
                    "type": "too_long",
                }
            ]
        )
    runtime.metrics.request_batch_size.observe(len(body.instances))
    features = await entity_features(
        runtime,
        champion,
        [i.entities for i in body.instances],
        [i.features for i in body.instances],
        [("body", "instances", n) for n in range(len(body.instances))],
        endpoint="/predict/batch",
    )
    records = validate_records(
        runtime,
        champion,
        features,
        [("body", "instances", n, "features") for n in range(len(body.instances))],
        endpoint="/predict/batch",
    )
    request_ids = [i.request_id or new_request_id() for i in body.instances]
    # During a canary each row goes where its key routes it: one model call per variant.
    routed = [
        runtime.routing.route(champion, i.routing_key or rid)
        for i, rid in zip(body.instances, request_ids, strict=True)
    ]
    answers: list[dict[str, Any]] = [{} for _ in records]
    for bundle in {id(b): b for b in routed}.values():
        rows = [n for n, b in enumerate(routed) if b is bundle]
        part = await predict_and_log(
            runtime,
            bundle,
            [records[n] for n in rows],
            [request_ids[n] for n in rows],
            source="batch",
            started=started,
        )
        for n, answer in zip(rows, part, strict=True):
            answers[n] = answer
    return {
        "predictions": answers,
        "model_version": champion.version or 0,
        "latency_ms": (time.perf_counter() - started) * 1000.0,
    }
