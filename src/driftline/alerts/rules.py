"""The built-in alerting rules: the Prometheus alerts of ``deploy/prometheus/alerts.yml``
evaluated in-process, for the embedded default where no Prometheus runs.

Each rule is a pure function of a :class:`~driftline.alerts.MetricSnapshot` of the service's
metrics (the names in ``service/metrics.py``), so both paths read the same numbers. Two
differences are inherent to evaluating one snapshot at a time:

* **Rates compare with the previous snapshot** instead of a range vector: ``increase(x[5m])``
  becomes ``x(now) - x(previous evaluation)`` (a counter that went down was reset, so its
  increase is its current value; a series missing from the previous snapshot is new, so its
  increase is its whole value). On the first evaluation (no previous snapshot) the rate-based
  rules -- :data:`HIGH_ERROR_RATE`, :data:`HIGH_LATENCY_P99`, :data:`LOW_CONFIDENCE`,
  :data:`ROLLBACK` -- stay silent. Their window is therefore the time between two monitor
  runs.
* **There is no** ``for:`` **duration**: an alert fires on the evaluation that finds it; the
  alert manager's ``group_wait`` and ``repeat_interval`` do the debouncing.

Staleness needs the evaluation time: :func:`evaluate_rules` takes ``now``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from driftline.alerts.model import Alert, Match, MetricSnapshot, RuleSpec
from driftline.errors import ConfigurationError

__all__ = [
    "ACCURACY_DROP",
    "ALERT_NAMES",
    "DATA_QUALITY_HARD_FAILURE",
    "FEATURE_DRIFT_CRITICAL",
    "FEATURE_DRIFT_WARNING",
    "HIGH_ERROR_RATE",
    "HIGH_LATENCY_P99",
    "HIGH_MISSING_RATE",
    "LOW_CONFIDENCE",
    "NO_CHAMPION",
    "PREDICTION_DRIFT_CRITICAL",
    "PREDICTION_DRIFT_WARNING",
    "REPORT_STALE",
    "ROLLBACK",
    "AlertThresholds",
    "builtin_rules",
    "evaluate_rules",
    "histogram_quantile",
]

UNWATCHED_ENDPOINTS = frozenset({"/metrics", "/health", "/ready"})
"""Endpoints the error-rate rule ignores (scrapes and probes)."""

FEATURE_DRIFT_CRITICAL = "DriftlineFeatureDriftCritical"
FEATURE_DRIFT_WARNING = "DriftlineFeatureDriftWarning"
PREDICTION_DRIFT_CRITICAL = "DriftlinePredictionDriftCritical"
PREDICTION_DRIFT_WARNING = "DriftlinePredictionDriftWarning"
REPORT_STALE = "DriftlineReportStale"
DATA_QUALITY_HARD_FAILURE = "DriftlineDataQualityHardFailure"
HIGH_MISSING_RATE = "DriftlineHighMissingRate"
HIGH_ERROR_RATE = "DriftlineHighErrorRate"
HIGH_LATENCY_P99 = "DriftlineHighLatencyP99"
LOW_CONFIDENCE = "DriftlineLowConfidence"
NO_CHAMPION = "DriftlineNoChampion"
ACCURACY_DROP = "DriftlineEstimatedAccuracyDrop"
ROLLBACK = "DriftlineRollback"

ALERT_NAMES: tuple[str, ...] = (
    FEATURE_DRIFT_CRITICAL,
    FEATURE_DRIFT_WARNING,
    PREDICTION_DRIFT_CRITICAL,
    PREDICTION_DRIFT_WARNING,
    REPORT_STALE,
    DATA_QUALITY_HARD_FAILURE,
    HIGH_MISSING_RATE,
    HIGH_ERROR_RATE,
    HIGH_LATENCY_P99,
    LOW_CONFIDENCE,
    NO_CHAMPION,
    ACCURACY_DROP,
    ROLLBACK,
)
"""Every built-in alert name, in the order of :func:`builtin_rules`."""


def _check(name: str, value: float, low: float, high: float, *, open_low: bool = False) -> None:
    ok = (value > low if open_low else value >= low) and value <= high
    if not ok or math.isnan(value):
        bracket = "(" if open_low else "["
        raise ConfigurationError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class AlertThresholds:
    """The numbers the built-in rules compare with. The defaults are the thresholds written in
    ``deploy/prometheus/alerts.yml``; change both together.

    Parameters
    ----------
    report_stale_seconds
        :data:`REPORT_STALE` fires when the latest monitor report is older than this
        (default 3600 s), in (0, inf).
    missing_rate
        :data:`HIGH_MISSING_RATE` fires for a feature whose missing share in the latest
        window exceeds this (default 0.25), in [0, 1].
    error_rate
        :data:`HIGH_ERROR_RATE` fires when the share of 5xx answers since the previous
        evaluation exceeds this (default 0.05), in [0, 1]. Probes and scrapes (``/metrics``,
        ``/health``, ``/ready``) are left out: a 503 from ``/ready`` is a readiness signal.
    latency_p99_seconds
        :data:`HIGH_LATENCY_P99` fires when the 99th percentile of ``/predict`` answer times
        since the previous evaluation exceeds this (default 0.5 s), in (0, inf).
    min_confidence
        :data:`LOW_CONFIDENCE` fires when the mean confidence of predictions since the
        previous evaluation falls below this (default 0.65), in [0, 1].
    accuracy_drop
        :data:`ACCURACY_DROP` fires when the label-free accuracy estimate is more than this
        below the champion's holdout accuracy (default 0.05, absolute), in [0, 1].
    min_requests
        Requests needed since the previous evaluation before the error-rate and latency rules
        judge (default 20), in [1, inf): two slow requests of twenty are not a p99.
    min_predictions
        Predictions needed before the confidence rule judges (default 20), in [1, inf).

    Example
    -------
    >>> AlertThresholds(missing_rate=0.5).missing_rate
    0.5
    >>> AlertThresholds(error_rate=5)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: error_rate must be in [0.0, 1.0], got 5
    """

    report_stale_seconds: float = 3600.0
    missing_rate: float = 0.25
    error_rate: float = 0.05
    latency_p99_seconds: float = 0.5
    min_confidence: float = 0.65
    accuracy_drop: float = 0.05
    min_requests: int = 20
    min_predictions: int = 20

    def __post_init__(self) -> None:
        inf = math.inf
        _check("report_stale_seconds", self.report_stale_seconds, 0.0, inf, open_low=True)
        _check("missing_rate", self.missing_rate, 0.0, 1.0)
        _check("error_rate", self.error_rate, 0.0, 1.0)
        _check("latency_p99_seconds", self.latency_p99_seconds, 0.0, inf, open_low=True)
        _check("min_confidence", self.min_confidence, 0.0, 1.0)
        _check("accuracy_drop", self.accuracy_drop, 0.0, 1.0)
        _check("min_requests", self.min_requests, 1, inf)
        _check("min_predictions", self.min_predictions, 1, inf)


# --- helpers ---------------------------------------------------------------------------------


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _increases(
    snapshot: MetricSnapshot, previous: MetricSnapshot, name: str
) -> list[tuple[dict[str, str], float]]:
    """Per series of a counter (or histogram part): how much it grew since ``previous``."""
    out = []
    for labels, value in snapshot.series(name):
        before = previous.get(name, **labels)
        if before is None or value < before:  # new series, or a counter reset
            out.append((labels, value))
        else:
            out.append((labels, value - before))
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative ``(upper bound, count)`` buckets, as PromQL computes
    it: linear interpolation inside the bucket, the largest finite bound when the quantile
    falls in the ``+Inf`` bucket. ``None`` with no observations.

    >>> histogram_quantile(0.5, [(0.1, 10), (1.0, 30), (math.inf, 30)])
    0.325
    >>> histogram_quantile(0.99, [(0.1, 0), (1.0, 5), (math.inf, 10)])
    1.0
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


# --- conditions ------------------------------------------------------------------------------


def _feature_drift(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None, *, level: float
) -> list[Match]:
    return [
        ({"feature": labels.get("feature", "")}, value)
        for labels, value in snapshot.series("driftline_feature_drift_severity")
        if value == level
    ]


def _prediction_drift(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None, *, level: float
) -> list[Match]:
    value = snapshot.get("driftline_prediction_drift_severity")
    return [({}, value)] if value is not None and value == level else []


def _report_stale(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> list[Match]:
    last = snapshot.get("driftline_last_report_timestamp_seconds")
    if now is None or last is None or not _finite(last) or last <= 0:
        return []  # no clock, or no report yet: nothing can be stale
    age = now - last
    return [({}, age)] if age > thresholds.report_stale_seconds else []


def _quality_hard(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None
) -> list[Match]:
    per_check: dict[str, float] = {}
    for labels, value in snapshot.series("driftline_quality_check_failures", severity="hard"):
        check = labels.get("check", "")
        per_check[check] = per_check.get(check, 0.0) + value
    return [({"check": c}, v) for c, v in sorted(per_check.items()) if v > 0]


def _missing_rate(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> list[Match]:
    return [
        ({"feature": labels.get("feature", "")}, value)
        for labels, value in snapshot.series("driftline_feature_missing_rate")
        if _finite(value) and value > thresholds.missing_rate
    ]


def _error_rate(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> list[Match]:
    if previous is None:
        return []
    grown = [
        (labels, v)
        for labels, v in _increases(snapshot, previous, "driftline_http_requests_total")
        if labels.get("endpoint") not in UNWATCHED_ENDPOINTS
    ]
    total = sum(v for _, v in grown)
    errors = sum(v for labels, v in grown if labels.get("status", "").startswith("5"))
    if total < thresholds.min_requests:
        return []
    rate = errors / total
    return [({}, rate)] if rate > thresholds.error_rate else []


def _latency_p99(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> list[Match]:
    if previous is None:
        return []
    by_le: dict[float, float] = {}
    for labels, grown in _increases(
        snapshot, previous, "driftline_http_request_duration_seconds_bucket"
    ):
        if labels.get("endpoint") != "/predict":
            continue
        le = float(labels.get("le", "nan"))
        if not math.isnan(le):
            by_le[le] = by_le.get(le, 0.0) + grown
    total = by_le.get(math.inf, 0.0)
    if total < thresholds.min_requests:
        return []
    p99 = histogram_quantile(0.99, list(by_le.items()))
    return [({}, p99)] if p99 is not None and p99 > thresholds.latency_p99_seconds else []


def _low_confidence(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> list[Match]:
    if previous is None:
        return []
    count = sum(
        v for _, v in _increases(snapshot, previous, "driftline_prediction_confidence_count")
    )
    total = sum(v for _, v in _increases(snapshot, previous, "driftline_prediction_confidence_sum"))
    if count < thresholds.min_predictions:
        return []
    mean = total / count
    return [({}, mean)] if mean < thresholds.min_confidence else []


def _no_champion(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None
) -> list[Match]:
    loaded = snapshot.get("driftline_model_loaded")
    return [({}, loaded)] if loaded is not None and loaded < 1 else []


def _accuracy_drop(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> list[Match]:
    estimate = snapshot.get("driftline_estimated_accuracy", bound="estimate")
    reference = snapshot.get("driftline_reference_accuracy")
    if not (_finite(estimate) and _finite(reference)) or reference is None or estimate is None:
        return []
    if reference <= 0:  # the gauge's zero default: no reference known
        return []
    drop = reference - estimate
    return [({}, drop)] if drop > thresholds.accuracy_drop else []


def _rollback(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None
) -> list[Match]:
    if previous is None:
        return []
    return [
        ({"actor": labels.get("actor", "")}, grown)
        for labels, grown in _increases(snapshot, previous, "driftline_rollbacks_total")
        if grown > 0
    ]


def builtin_rules(thresholds: AlertThresholds | None = None) -> tuple[RuleSpec, ...]:
    """The built-in rule set, one rule per name of :data:`ALERT_NAMES` (in that order).

    Example
    -------
    >>> [r.name for r in builtin_rules()] == list(ALERT_NAMES)
    True
    """
    t = AlertThresholds() if thresholds is None else thresholds
    with_t = functools.partial
    return (
        RuleSpec(
            FEATURE_DRIFT_CRITICAL,
            "critical",
            "Feature {feature} drifted (critical)",
            with_t(_feature_drift, level=2.0),
            "The latest monitor report found a critical, significant shift in feature "
            "{feature}. Compare its reference and window distributions in the report.",
        ),
        RuleSpec(
            FEATURE_DRIFT_WARNING,
            "warning",
            "Feature {feature} drifted (warning)",
            with_t(_feature_drift, level=1.0),
            "The latest monitor report found a significant shift of warning size in feature "
            "{feature}.",
        ),
        RuleSpec(
            PREDICTION_DRIFT_CRITICAL,
            "critical",
            "Critical drift in the model's predictions",
            with_t(_prediction_drift, level=2.0),
            "The distribution of the champion's outputs moved far from the reference.",
        ),
        RuleSpec(
            PREDICTION_DRIFT_WARNING,
            "warning",
            "Drift warning in the model's predictions",
            with_t(_prediction_drift, level=1.0),
            "The distribution of the champion's outputs moved away from the reference.",
        ),
        RuleSpec(
            REPORT_STALE,
            "warning",
            "No monitor report for {value:.0f} s",
            with_t(_report_stale, thresholds=t),
            f"The latest monitor report is older than {t.report_stale_seconds:g} s: the "
            "monitor job is not running or failing, so drift goes unwatched.",
        ),
        RuleSpec(
            DATA_QUALITY_HARD_FAILURE,
            "critical",
            "Data-quality check {check} failed hard",
            _quality_hard,
            "{value:g} hard failure(s) of the {check} check in the latest report.",
        ),
        RuleSpec(
            HIGH_MISSING_RATE,
            "warning",
            "Feature {feature} is missing in {value:.1%} of requests",
            with_t(_missing_rate, thresholds=t),
            f"The missing share of feature {{feature}} exceeds {t.missing_rate:g} in the "
            "latest window.",
        ),
        RuleSpec(
            HIGH_ERROR_RATE,
            "critical",
            "{value:.1%} of requests failed with 5xx",
            with_t(_error_rate, thresholds=t),
            f"The share of 5xx answers since the previous evaluation exceeds {t.error_rate:g}.",
        ),
        RuleSpec(
            HIGH_LATENCY_P99,
            "warning",
            "/predict p99 latency is {value:.3g} s",
            with_t(_latency_p99, thresholds=t),
            f"The 99th percentile of /predict answer times since the previous evaluation "
            f"exceeds {t.latency_p99_seconds:g} s.",
        ),
        RuleSpec(
            LOW_CONFIDENCE,
            "warning",
            "Mean prediction confidence fell to {value:.3f}",
            with_t(_low_confidence, thresholds=t),
            f"The mean probability of the predicted class since the previous evaluation is "
            f"below {t.min_confidence:g}: the model sees inputs unlike its training data.",
        ),
        RuleSpec(
            NO_CHAMPION,
            "critical",
            "No champion model is loaded",
            _no_champion,
            "The service has no model to serve: /predict answers 503.",
        ),
        RuleSpec(
            ACCURACY_DROP,
            "warning",
            "Estimated accuracy is {value:.3f} below the reference",
            with_t(_accuracy_drop, thresholds=t),
            f"The label-free (CBPE) accuracy estimate fell more than {t.accuracy_drop:g} "
            "below the champion's holdout accuracy.",
        ),
        RuleSpec(
            ROLLBACK,
            "warning",
            "The champion was rolled back (by {actor})",
            _rollback,
            "{value:g} rollback(s) by {actor} since the previous evaluation.",
        ),
    )


def evaluate_rules(
    snapshot: MetricSnapshot,
    *,
    now: float,
    previous: MetricSnapshot | None = None,
    rules: tuple[RuleSpec, ...] | None = None,
) -> list[Alert]:
    """Every alert firing in ``snapshot``: the input of ``AlertManager.process``.

    Example
    -------
    >>> snap = MetricSnapshot.from_dict({
    ...     'driftline_feature_drift_severity{feature="age"}': 2,
    ...     'driftline_feature_drift_severity{feature="income"}': 1,
    ...     "driftline_model_loaded": 1,
    ... })
    >>> [(a.name, a.labels) for a in evaluate_rules(snap, now=0.0)]
    [('DriftlineFeatureDriftCritical', {'feature': 'age'}), \
('DriftlineFeatureDriftWarning', {'feature': 'income'})]
    """
    alerts: list[Alert] = []
    for rule in builtin_rules() if rules is None else rules:
        alerts += rule.evaluate(snapshot, previous=previous, now=now)
    return alerts
