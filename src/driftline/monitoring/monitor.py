"""The monitor job: one report over a window of live traffic.

Merges every worker's buckets of the champion over the window (O(bins × buckets)), then runs
the pure library on them: data drift and prediction drift (:mod:`driftline.drift.decision`),
data quality (:mod:`driftline.quality`), the label-free performance estimate
(:mod:`driftline.performance`; which estimator produced the accuracy is chosen by
:mod:`driftline.monitoring.accuracy`: the doubly robust one when the reference keeps a labelled
sample and the window's buckets a row sample, CBPE otherwise), realized metrics on the labels
that arrived, and the state of concept-drift detection (kept up to date by
:mod:`driftline.monitoring.concept`). The report is persisted, exported as metrics, listed by
``GET /reports`` and printed by ``driftline check``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from driftline import tracing
from driftline.drift.decision import DriftPolicy
from driftline.errors import ConfigurationError, NotReadyError
from driftline.models.bundle import ModelBundle
from driftline.monitoring.accuracy import ESTIMATORS, choose_accuracy
from driftline.monitoring.concept import concept_status
from driftline.monitoring.reference import MonitoringReference, reference_for
from driftline.monitoring.window import WindowSummary, summarize
from driftline.performance import compare, estimate, realized_metrics
from driftline.quality import QualityPolicy
from driftline.registry import CHAMPION, Registry
from driftline.report import (
    SEVERITY_CODE,
    assess,
    distributions,
    drift_body,
    jsonable,
    overall_status,
    quality_body,
)
from driftline.schema import label_text
from driftline.store import Store, queries

__all__ = ["SEVERITY_CODE", "MonitorOptions", "jsonable", "run_monitor", "window_summary"]


@dataclass(frozen=True)
class MonitorOptions:
    window_seconds: float = 3_600.0
    bucket_seconds: float = 60.0
    drift: DriftPolicy = dataclasses.field(default_factory=DriftPolicy)
    quality: QualityPolicy = dataclasses.field(default_factory=QualityPolicy)
    #: ``"auto"``: the doubly robust accuracy estimate when it can run, else CBPE; ``"cbpe"``.
    estimator: str = "auto"

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ConfigurationError(
                f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}"
            )


def window_summary(
    store: Store,
    *,
    version: int,
    start: float,
    end: float,
    variant: str = "champion",
    bucket_seconds: float = 60.0,
) -> WindowSummary:
    """Every worker's buckets of ``version`` in ``[start, end)``, merged."""
    with store.sessions() as session:
        rows = queries.buckets(
            session=session, start=start, end=end, version=version, variant=variant
        )
    return summarize(
        (r.payload for r in rows),
        starts=(r.bucket_start for r in rows),
        bucket_seconds=bucket_seconds,
    )


def build_report(
    *,
    bundle: ModelBundle,
    reference: MonitoringReference,
    current: WindowSummary,
    labeled: list[dict[str, Any]],
    concept: dict[str, Any],
    options: MonitorOptions,
    model_name: str,
    start: float,
    end: float,
) -> dict[str, Any]:
    """The report body (JSON-safe) from already-gathered inputs; pure."""
    verdicts = assess(
        reference.features,
        current.features,
        reference_outputs=reference.outputs,
        current_outputs=current.outputs,
        rejected=current.rejected,
        drift_policy=options.drift,
        quality_policy=options.quality,
    )
    estimated = None
    estimator: str | None = None
    estimator_reason: str | None = None
    estimator_detail: dict[str, Any] = {}
    if current.sketch is not None and current.sketch.n > 0:
        with tracing.span("driftline.monitor.estimate_accuracy") as span:
            choice = choose_accuracy(
                reference,
                current.sample,
                estimate(current.sketch),
                unsampled_rows=current.unsampled_rows,
                estimator=options.estimator,
            )
            span.set_attribute("driftline.monitor.estimator", choice.estimator)
        estimated, estimator = choice.estimated, choice.estimator
        estimator_reason, estimator_detail = choice.reason, choice.detail
    realized = None
    if labeled:
        realized = realized_metrics(
            [r["label"] for r in labeled],
            [r["prediction"] for r in labeled],
            labels=[label_text(c) for c in bundle.classes] or None,
        )
    body: dict[str, Any] = {
        "ts": end,
        "model_name": model_name,
        "model_version": bundle.version,
        "window": {
            "start": start,
            "end": end,
            "seconds": end - start,
            "buckets": current.buckets,
        },
        "rows": current.rows,
        "requests": current.requests,
        "errors": current.errors,
        "rejected": current.rejected,
        "p95_latency_ms": current.p95_latency_ms,
        "data_drift": drift_body(verdicts.data_drift),
        "prediction_drift": (
            drift_body(verdicts.prediction_drift) if verdicts.prediction_drift else None
        ),
        "quality": quality_body(verdicts.quality),
        "performance": {
            "reference_accuracy": reference.reference_accuracy,
            "estimated": jsonable(estimated) if estimated is not None else None,
            # Which label-free estimator produced the estimated accuracy and its band
            # ("doubly_robust" or "cbpe"; macro F1 and ROC AUC are always CBPE's), and why.
            "estimator": estimator,
            "estimator_reason": estimator_reason,
            "estimator_detail": estimator_detail,
            "realized": jsonable(realized) if realized is not None else None,
            "comparison": jsonable(compare(estimated, realized)) if estimated else [],
        },
        "concept_drift": concept,
        "distributions": distributions(reference.features, current.features),
    }
    body["status"] = overall_status(body)
    return jsonable(body)  # type: ignore[no-any-return]


@tracing.traced("driftline.monitor")
def run_monitor(
    *,
    store: Store,
    registry: Registry,
    options: MonitorOptions = MonitorOptions(),
    now: float | None = None,
    version: int | None = None,
    persist: bool = True,
) -> dict[str, Any]:
    """Write (and return) a report on the champion over the last ``window_seconds``."""
    end = time.time() if now is None else now
    start = end - options.window_seconds
    chosen = version if version is not None else registry.alias(CHAMPION)
    if chosen is None:
        raise NotReadyError("no champion to monitor yet: train and register a model first")
    tracing.annotate(
        {
            "driftline.model.name": registry.model_name,
            "driftline.model.version": chosen,
            "driftline.monitor.window_seconds": options.window_seconds,
        }
    )
    with tracing.span("driftline.monitor.load_model"):
        bundle = registry.load(chosen)
        reference = reference_for(bundle)
    with tracing.span("driftline.monitor.read_window") as span:
        current = window_summary(
            store, version=chosen, start=start, end=end, bucket_seconds=options.bucket_seconds
        )
        with store.sessions() as session:
            labeled = queries.labeled_predictions(
                session=session, start=start, end=end, version=chosen, limit=200_000
            )
        span.set_attribute("driftline.rows", current.rows)
        span.set_attribute("driftline.monitor.buckets", current.buckets)
        span.set_attribute("driftline.monitor.labeled", len(labeled))
    with tracing.span("driftline.monitor.build_report"):
        body = build_report(
            bundle=bundle,
            reference=reference,
            current=current,
            labeled=labeled,
            concept=concept_status(store, registry.model_name, chosen),
            options=options,
            model_name=registry.model_name,
            start=start,
            end=end,
        )
    tracing.annotate(
        {
            "driftline.rows": current.rows,
            "driftline.monitor.status": body["status"],
            "driftline.monitor.data_drift": body["data_drift"]["severity"],
        }
    )
    if persist:
        with tracing.span("driftline.monitor.persist"), store.sessions.begin() as session:
            body["id"] = queries.add_report(
                session=session,
                model_name=registry.model_name,
                model_version=chosen,
                window_start=start,
                window_end=end,
                status=body["status"],
                body=body,
                ts=end,
            )
            if body["status"] in ("warning", "critical"):
                queries.add_audit(
                    session=session,
                    kind="drift_report",
                    actor="monitor",
                    model_version=chosen,
                    message=f"monitor report {body['id']}: {body['status']}",
                    details={
                        "report_id": body["id"],
                        "data_drift": body["data_drift"]["severity"],
                        "prediction_drift": (body["prediction_drift"] or {}).get("severity"),
                        "quality": body["quality"]["severity"],
                        "concept_drift": body["concept_drift"].get("state"),
                        "drifted_features": [
                            f["feature"]
                            for f in body["data_drift"]["features"]
                            if f["severity"] in ("warning", "critical")
                        ],
                    },
                )
        tracing.annotate({"driftline.monitor.report_id": body["id"]})
    return body
