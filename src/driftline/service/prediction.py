"""The prediction path shared by ``POST /predict`` and ``POST /predict/batch``: features looked
up by entity, validation against the schema, then prediction, logging and live events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from driftline import tracing
from driftline.errors import (
    EntityNotFoundError,
    FeatureStoreUnavailableError,
    PredictionError,
    ValidationError,
)
from driftline.featurestore import FeastSpec, check_entities, merged_features
from driftline.logs import current_request_id, new_request_id
from driftline.models.bundle import ModelBundle
from driftline.schema import label_text
from driftline.service.runtime import ServingRuntime

__all__ = ["entity_features", "predict_and_log", "validate_records"]


def validate_records(
    runtime: ServingRuntime,
    bundle: ModelBundle,
    features: list[Any],
    locs: list[tuple[str | int, ...]],
    *,
    endpoint: str,
) -> list[dict[str, Any]]:
    """Validate every record against the schema; raise naming every bad field of every row."""
    clean: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for raw, loc in zip(features, locs, strict=True):
        record, problems = bundle.schema.check_record(raw, loc)
        if problems:
            errors.extend(problems)
        elif record is not None:
            clean.append(record)
    if errors:
        runtime.metrics.rejected.labels(endpoint=endpoint, reason="validation").inc()
        runtime.schema_violations += len(errors)
        runtime.recorder.observe_rejected(bundle.version or 0, len(features))
        raise ValidationError(errors)
    return clean


async def entity_features(
    runtime: ServingRuntime,
    bundle: ModelBundle,
    entities: list[Mapping[str, Any] | None],
    inline: list[Any],
    locs: list[tuple[str | int, ...]],
    *,
    endpoint: str,
) -> list[Any]:
    """The features of each request row: for rows that carry entity keys, the model's Feast
    features fetched from the online store, overlaid by those sent inline (inline wins).
    Rows without entity keys keep their inline features. Nothing is predicted until every
    row has all its fetched features: a missing entity raises
    :class:`~driftline.errors.EntityNotFoundError` (404), a store outage
    :class:`~driftline.errors.FeatureStoreUnavailableError` (503)."""
    wanted = [n for n, e in enumerate(entities) if e is not None]
    if not wanted:
        return inline
    spec = FeastSpec.of_bundle_meta(bundle.meta)
    errors: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for n in wanted:
        loc = locs[n]
        if spec is None:
            errors.append(
                {
                    "loc": [*loc, "entities"],
                    "msg": f"model version {bundle.version} was not trained from Feast features "
                    "(driftline train --feast-repo); send its features instead",
                    "type": "no_feast_features",
                }
            )
            continue
        if inline[n] is not None and not isinstance(inline[n], Mapping):
            errors.append(
                {
                    "loc": [*loc, "features"],
                    "msg": "with entities, features must be an object keyed by feature name",
                    "type": "dict_type",
                }
            )
        try:
            keys.append(check_entities(spec, entities[n] or {}, (*loc, "entities")))
        except ValidationError as exc:
            errors.extend(exc.errors)
    if errors:
        runtime.metrics.rejected.labels(endpoint=endpoint, reason="validation").inc()
        raise ValidationError(errors)
    assert spec is not None
    if runtime.feast is None:
        runtime.metrics.prediction_errors.labels(reason="feature_store").inc()
        raise FeatureStoreUnavailableError(
            "this server has no Feast repository: set DRIFTLINE_FEAST_REPO to look features "
            "up by entity"
        )
    try:
        fetched = await runtime.feast.fetch(spec, keys)
    except FeatureStoreUnavailableError:
        runtime.metrics.prediction_errors.labels(reason="feature_store").inc()
        raise
    except EntityNotFoundError:
        runtime.metrics.rejected.labels(endpoint=endpoint, reason="entity_not_found").inc()
        raise
    out = list(inline)
    for n, values in zip(wanted, fetched, strict=True):
        out[n] = merged_features(values, inline[n] or {})
    return out


@tracing.traced("driftline.predict")
async def predict_and_log(
    runtime: ServingRuntime,
    bundle: ModelBundle,
    records: list[dict[str, Any]],
    request_ids: list[str | None],
    *,
    source: str,
    started: float,
) -> list[dict[str, Any]]:
    """Predict validated records, queue their log records and publish live events.

    Returns one response dict per record (the shape of ``PredictResponse``).
    """
    version = bundle.version if bundle.version is not None else 0
    variant = runtime.variant_of(bundle)
    metrics = runtime.metrics
    if tracing.enabled():
        tracing.annotate(
            {
                "driftline.model.version": version,
                "driftline.variant": variant,
                "driftline.rows": len(records),
                "driftline.source": source,
                "driftline.request_id": current_request_id(),
            }
        )
    try:
        results = await runtime.batcher.predict(bundle, records)
    except Exception as exc:
        metrics.prediction_errors.labels(reason="model").inc()
        runtime.recorder.observe_requests(version, (), variant=variant, errors=len(records))
        raise PredictionError(f"the model failed on this request: {exc}") from exc
    now = time.time()
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    metrics.child(metrics.prediction_latency, variant).observe(elapsed_ms / 1000.0)
    runtime.recorder.observe_requests(version, [elapsed_ms] * len(records), variant=variant)
    answers: list[dict[str, Any]] = []
    for record, request_id, result in zip(records, request_ids, results, strict=True):
        rid = request_id or new_request_id()
        label = result.prediction
        row = {
            "request_id": rid,
            "ts": now,
            "model_name": runtime.settings.model_name,
            "model_version": version,
            "variant": variant,
            "source": source,
            "features": record,
            "prediction": label_text(label),
            "probabilities": result.probabilities,
            "confidence": result.confidence,
            "latency_ms": elapsed_ms,
        }
        await runtime.log_prediction(row)
        metrics.child(metrics.predictions, variant, label_text(label)).inc()
        metrics.confidence.observe(result.confidence)
        answer = {
            "request_id": rid,
            "prediction": label,
            "probabilities": result.probabilities,
            "confidence": result.confidence,
            "model_version": version,
            "variant": variant,
            "latency_ms": elapsed_ms,
        }
        if runtime.hub.subscribers:
            runtime.hub.publish({"type": "prediction", "ts": now, **answer})
        answers.append(answer)
    if variant == "champion":
        runtime.shadow(records, answers)
    return answers
