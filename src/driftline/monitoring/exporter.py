"""Report figures as Prometheus gauges (every worker exports the latest report)."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from driftline.monitoring.monitor import SEVERITY_CODE

if TYPE_CHECKING:  # the service imports this module
    from driftline.service.metrics import ServiceMetrics

__all__ = ["export_report"]

CONCEPT_CODE = {"stable": 0, "warning": 1, "drift_confirmed": 2}


def export_report(metrics: ServiceMetrics, body: dict[str, Any]) -> None:
    """Set the monitoring gauges from a report body."""
    drift = body.get("data_drift") or {}
    for gauge in (
        metrics.feature_drift_statistic,
        metrics.feature_drift_p_value,
        metrics.feature_drift_effect_size,
        metrics.feature_drift_severity,
        metrics.feature_missing_rate,
    ):
        metrics.forget(gauge, math.nan)  # no current value (see ServiceMetrics.forget)
    metrics.forget(metrics.quality_failures, 0.0)
    for feature in drift.get("features", []):
        name = feature["feature"]
        if feature.get("statistic") is not None:
            metrics.feature_drift_statistic.labels(
                feature=name, test=str(feature.get("method"))
            ).set(feature["statistic"])
        if feature.get("p_adjusted") is not None:
            metrics.feature_drift_p_value.labels(feature=name).set(feature["p_adjusted"])
        if feature.get("effect_size") is not None:
            metrics.feature_drift_effect_size.labels(
                feature=name, measure=str(feature.get("effect_name"))
            ).set(feature["effect_size"])
        metrics.feature_drift_severity.labels(feature=name).set(
            SEVERITY_CODE.get(feature["severity"], -1)
        )
        if feature.get("missing_rate_current") is not None:
            metrics.feature_missing_rate.labels(feature=name).set(feature["missing_rate_current"])
    metrics.dataset_drift_severity.set(SEVERITY_CODE.get(drift.get("severity", ""), -1))
    prediction = body.get("prediction_drift") or {}
    metrics.prediction_drift_severity.set(SEVERITY_CODE.get(prediction.get("severity", ""), -1))
    failures = Counter(
        (str(f["check"]), str(f["severity"]))
        for f in (body.get("quality") or {}).get("findings", [])
        if not f.get("passed", True)
    )
    for (check, severity), n in failures.items():
        metrics.quality_failures.labels(check=check, severity=severity).set(n)
    performance = body.get("performance") or {}
    estimated = performance.get("estimated")
    if estimated:
        metrics.estimated_accuracy.labels(bound="estimate").set(estimated["accuracy"])
        metrics.estimated_accuracy.labels(bound="lower").set(estimated["accuracy_lower"])
        metrics.estimated_accuracy.labels(bound="upper").set(estimated["accuracy_upper"])
    if performance.get("reference_accuracy") is not None:
        metrics.reference_accuracy.set(performance["reference_accuracy"])
    realized = performance.get("realized")
    metrics.realized_labeled.set((realized or {}).get("n") or 0)
    if realized:
        for key in ("accuracy", "f1_macro", "cohen_kappa"):
            if realized.get(key) is not None:
                metrics.realized_performance.labels(metric=key).set(realized[key])
    concept = body.get("concept_drift") or {}
    metrics.concept_drift_state.set(CONCEPT_CODE.get(str(concept.get("state")), 0))
    if body.get("ts") is not None:
        metrics.last_report.set(body["ts"])
