"""The built-in alerting rules: the Prometheus alerts of ``deploy/prometheus/alerts.yml``
evaluated in-process, for the embedded default where no Prometheus runs.

Long on purpose (600+ lines): one small function per rule of one Prometheus rule set.

Each rule is a pure function of a :class:`~driftline.alerts.MetricSnapshot` of the service's
metrics (the names in ``service/metrics.py``), so both paths read the same numbers. How they
differ from evaluating PromQL over a range:

* **Rates compare with an earlier snapshot** instead of a range vector: ``increase(x[5m])``
  becomes ``x(now) - x(previous)`` (a counter that went down was reset, so its
  increase is its current value; a series missing from the previous snapshot is new, so its
  increase is its whole value). On the first evaluation (no previous snapshot) the rate-based
  rules -- :data:`HIGH_ERROR_RATE`, :data:`HIGH_LATENCY_P99`, :data:`LOW_CONFIDENCE`,
  :data:`ROLLBACK` -- cannot judge. The runner passes as ``previous`` the snapshot taken
  ``rate_window_seconds`` (5 min) before, like ``[5m]``; the traffic rules read a
  :class:`~driftline.alerts.model.MetricHistory` of the trailing hour.
* ``for`` **and** ``keep_firing_for`` are applied by :class:`~driftline.alerts.RuleEngine`,
  from each rule's ``for_seconds`` and ``keep_firing_for_seconds`` (defaults in
  :data:`DEFAULT_DURATIONS`, the ``for`` of each Prometheus rule). Threshold rules also have a
  *resolve* threshold (hysteresis): between the two, a pending or firing alert keeps its
  state and no new one starts (the Prometheus rules have ``keep_firing_for`` only).
* **Missing data is not a recovery**: a rule that cannot judge (report gauges not exported
  yet, no earlier snapshot, fewer than ``min_requests`` requests in the window) returns
  "unknown", and its alerts keep their state.

:func:`evaluate_rules` is the stateless view (what is past its firing threshold now);
staleness needs the evaluation time: it takes ``now``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from driftline.alerts.model import (
    UNKNOWN,
    Alert,
    Condition,
    Evaluation,
    Match,
    MetricHistory,
    MetricSnapshot,
    RuleSpec,
    Severity,
)
from driftline.errors import ConfigurationError

__all__ = [
    "ACCURACY_DROP",
    "ALERT_NAMES",
    "DATA_QUALITY_HARD_FAILURE",
    "DEFAULT_DURATIONS",
    "FEATURE_DRIFT_CRITICAL",
    "FEATURE_DRIFT_WARNING",
    "HIGH_ERROR_RATE",
    "HIGH_LATENCY_P99",
    "HIGH_MISSING_RATE",
    "LOW_CONFIDENCE",
    "NO_CHAMPION",
    "PREDICTIONS_STOPPED",
    "PREDICTION_DRIFT_CRITICAL",
    "PREDICTION_DRIFT_WARNING",
    "REALIZED_ACCURACY_LOW",
    "REPORT_STALE",
    "ROLLBACK",
    "TRAFFIC_DROP",
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
PREDICTIONS_STOPPED = "DriftlinePredictionsStopped"
TRAFFIC_DROP = "DriftlineTrafficDrop"
REALIZED_ACCURACY_LOW = "DriftlineRealizedAccuracyLow"

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
    PREDICTIONS_STOPPED,
    TRAFFIC_DROP,
    REALIZED_ACCURACY_LOW,
)
"""Every built-in alert name, in the order of :func:`builtin_rules`."""

_M = 60.0
DEFAULT_DURATIONS: dict[str, tuple[float, float]] = {
    FEATURE_DRIFT_CRITICAL: (5 * _M, 15 * _M),
    FEATURE_DRIFT_WARNING: (30 * _M, 15 * _M),
    PREDICTION_DRIFT_CRITICAL: (10 * _M, 15 * _M),
    PREDICTION_DRIFT_WARNING: (30 * _M, 15 * _M),
    REPORT_STALE: (10 * _M, 0.0),
    DATA_QUALITY_HARD_FAILURE: (5 * _M, 10 * _M),
    HIGH_MISSING_RATE: (30 * _M, 15 * _M),
    HIGH_ERROR_RATE: (5 * _M, 5 * _M),
    HIGH_LATENCY_P99: (10 * _M, 10 * _M),
    LOW_CONFIDENCE: (30 * _M, 15 * _M),
    NO_CHAMPION: (2 * _M, 0.0),
    ACCURACY_DROP: (30 * _M, 15 * _M),
    ROLLBACK: (0.0, 0.0),
    PREDICTIONS_STOPPED: (5 * _M, 0.0),
    TRAFFIC_DROP: (10 * _M, 10 * _M),
    REALIZED_ACCURACY_LOW: (15 * _M, 15 * _M),
}
"""``(for, keep_firing_for)`` in seconds per built-in rule: the ``for:`` and ``keep_firing_for:``
of the same rule in ``deploy/prometheus/alerts.yml`` (a test compares them). Override per rule
in the ``rules:`` section of the alerts configuration."""


def _check(name: str, value: float, low: float, high: float, *, open_low: bool = False) -> None:
    ok = (value > low if open_low else value >= low) and value <= high
    if not ok or math.isnan(value):
        bracket = "(" if open_low else "["
        raise ConfigurationError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class AlertThresholds:
    """The numbers the built-in rules compare with. The defaults are the thresholds written in
    ``deploy/prometheus/alerts.yml``; change both together. Each ``*_resolve`` is the other end
    of a hysteresis band: a firing alert resolves only once its value is back beyond it (and
    stayed so for the rule's ``keep_firing_for``); between the two, nothing changes.

    Parameters
    ----------
    report_stale_seconds
        :data:`REPORT_STALE` fires when the latest monitor report is older than this
        (default 3600 s), in (0, inf).
    missing_rate, missing_rate_resolve
        :data:`HIGH_MISSING_RATE` fires for a feature whose missing share in the latest
        window exceeds ``missing_rate`` (default 0.25) and resolves below
        ``missing_rate_resolve`` (0.2), in [0, 1].
    error_rate, error_rate_resolve
        :data:`HIGH_ERROR_RATE` fires when the share of 5xx answers in the rate window exceeds
        ``error_rate`` (default 0.05), resolves below ``error_rate_resolve`` (0.03), in [0, 1].
        Probes and scrapes (``/metrics``, ``/health``, ``/ready``) are left out: a 503 from
        ``/ready`` is a readiness signal.
    latency_p99_seconds, latency_p99_resolve_seconds
        :data:`HIGH_LATENCY_P99` fires when the 99th percentile of ``/predict`` answer times
        in the rate window exceeds ``latency_p99_seconds`` (default 0.5 s) and resolves below
        ``latency_p99_resolve_seconds`` (0.4 s), in (0, inf).
    min_confidence, min_confidence_resolve
        :data:`LOW_CONFIDENCE` fires when the mean confidence of predictions in the rate
        window falls below ``min_confidence`` (default 0.65) and resolves above
        ``min_confidence_resolve`` (0.7), in [0, 1].
    accuracy_drop, accuracy_drop_resolve
        :data:`ACCURACY_DROP` fires when the label-free accuracy estimate is more than
        ``accuracy_drop`` (default 0.05, absolute) below the champion's holdout accuracy and
        resolves when less than ``accuracy_drop_resolve`` (0.03) below it, in [0, 1].
    realized_accuracy_drop, realized_accuracy_drop_resolve
        :data:`REALIZED_ACCURACY_LOW` fires when the accuracy on the labels of the latest
        window is more than ``realized_accuracy_drop`` (default 0.05) below the holdout
        accuracy, resolves when less than ``realized_accuracy_drop_resolve`` (0.03) below,
        in [0, 1].
    min_labels
        Labelled predictions in the latest window before :data:`REALIZED_ACCURACY_LOW`
        judges (default 50), in [1, inf).
    traffic_window_seconds
        The recent window of the traffic rules (default 600 s), in (0, inf):
        :data:`PREDICTIONS_STOPPED` fires when it holds no prediction although the hour
        before it had at least ``min_predictions``; :data:`TRAFFIC_DROP` when its prediction
        rate is below ``traffic_drop_ratio`` (default 0.2) of the rate of the hour before
        (and resolves above ``traffic_drop_resolve_ratio``, 0.3), in [0, 1].
    rate_window_seconds
        The window of the rate rules (errors, latency, confidence, rollbacks), like PromQL's
        ``[5m]`` (default 300 s), in (0, inf).
    min_requests
        Requests needed in the rate window before the error-rate and latency rules judge
        (default 20), in [1, inf): two slow requests of twenty are not a p99.
    min_predictions
        Predictions needed before the confidence and traffic rules judge (default 20), in
        [1, inf).

    Example
    -------
    >>> AlertThresholds(missing_rate=0.5).missing_rate
    0.5
    >>> AlertThresholds(error_rate=5)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: error_rate must be in [0.0, 1.0], got 5
    >>> AlertThresholds(latency_p99_resolve_seconds=0.6)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: latency_p99_resolve_seconds must be at most \
latency_p99_seconds (0.5), got 0.6
    """

    report_stale_seconds: float = 3600.0
    missing_rate: float = 0.25
    missing_rate_resolve: float = 0.2
    error_rate: float = 0.05
    error_rate_resolve: float = 0.03
    latency_p99_seconds: float = 0.5
    latency_p99_resolve_seconds: float = 0.4
    min_confidence: float = 0.65
    min_confidence_resolve: float = 0.7
    accuracy_drop: float = 0.05
    accuracy_drop_resolve: float = 0.03
    realized_accuracy_drop: float = 0.05
    realized_accuracy_drop_resolve: float = 0.03
    min_labels: int = 50
    traffic_window_seconds: float = 600.0
    traffic_drop_ratio: float = 0.2
    traffic_drop_resolve_ratio: float = 0.3
    rate_window_seconds: float = 300.0
    min_requests: int = 20
    min_predictions: int = 20

    def __post_init__(self) -> None:
        inf = math.inf
        _check("report_stale_seconds", self.report_stale_seconds, 0.0, inf, open_low=True)
        for name in (
            "missing_rate",
            "missing_rate_resolve",
            "error_rate",
            "error_rate_resolve",
            "min_confidence",
            "min_confidence_resolve",
            "accuracy_drop",
            "accuracy_drop_resolve",
            "realized_accuracy_drop",
            "realized_accuracy_drop_resolve",
            "traffic_drop_ratio",
            "traffic_drop_resolve_ratio",
        ):
            _check(name, getattr(self, name), 0.0, 1.0)
        for name in (
            "latency_p99_seconds",
            "latency_p99_resolve_seconds",
            "traffic_window_seconds",
            "rate_window_seconds",
        ):
            _check(name, getattr(self, name), 0.0, inf, open_low=True)
        _check("min_requests", self.min_requests, 1, inf)
        _check("min_predictions", self.min_predictions, 1, inf)
        _check("min_labels", self.min_labels, 1, inf)
        # (resolve, fire, "at most" | "at least"): the band must lie on the clear side.
        for resolve, fire, side in (
            ("missing_rate_resolve", "missing_rate", "most"),
            ("error_rate_resolve", "error_rate", "most"),
            ("latency_p99_resolve_seconds", "latency_p99_seconds", "most"),
            ("min_confidence_resolve", "min_confidence", "least"),
            ("accuracy_drop_resolve", "accuracy_drop", "most"),
            ("realized_accuracy_drop_resolve", "realized_accuracy_drop", "most"),
            ("traffic_drop_resolve_ratio", "traffic_drop_ratio", "least"),
        ):
            r, f = getattr(self, resolve), getattr(self, fire)
            if (r > f) if side == "most" else (r < f):
                raise ConfigurationError(f"{resolve} must be at {side} {fire} ({f!r}), got {r!r}")


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


def _no_report(snapshot: MetricSnapshot) -> bool:
    """True when this process has not exported a monitor report yet (just started): the report
    gauges are empty or zero, which says nothing about drift, quality or accuracy."""
    last = snapshot.get("driftline_last_report_timestamp_seconds")
    return last is not None and not (_finite(last) and last > 0)


def _band(
    values: list[Match], *, fire: Callable[[float], bool], hold: Callable[[float], bool]
) -> Evaluation:
    """Split measured values into firing (past the firing threshold) and holding (past the
    resolve threshold only)."""
    firing = tuple((labels, v) for labels, v in values if _finite(v) and fire(v))
    holding = tuple((labels, v) for labels, v in values if _finite(v) and not fire(v) and hold(v))
    return Evaluation(firing=firing, holding=holding)


def _feature_drift(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None, *, level: float
) -> list[Match] | Evaluation:
    if _no_report(snapshot):
        return UNKNOWN
    return [
        ({"feature": labels.get("feature", "")}, value)
        for labels, value in snapshot.series("driftline_feature_drift_severity")
        if value == level
    ]


def _prediction_drift(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None, *, level: float
) -> list[Match] | Evaluation:
    if _no_report(snapshot):
        return UNKNOWN
    value = snapshot.get("driftline_prediction_drift_severity")
    return [({}, value)] if value is not None and value == level else []


def _report_stale(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> list[Match] | Evaluation:
    last = snapshot.get("driftline_last_report_timestamp_seconds")
    if now is None or last is None or not _finite(last) or last <= 0:
        return UNKNOWN  # no clock, or no report exported yet: cannot tell
    age = now - last
    return [({}, age)] if age > thresholds.report_stale_seconds else []


def _quality_hard(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None
) -> list[Match] | Evaluation:
    if _no_report(snapshot):
        return UNKNOWN
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
) -> Evaluation:
    if _no_report(snapshot):
        return UNKNOWN
    values = [
        ({"feature": labels.get("feature", "")}, value)
        for labels, value in snapshot.series("driftline_feature_missing_rate")
    ]
    return _band(
        values,
        fire=lambda v: v > thresholds.missing_rate,
        hold=lambda v: v >= thresholds.missing_rate_resolve,
    )


def _error_rate(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> Evaluation:
    if previous is None:
        return UNKNOWN
    grown = [
        (labels, v)
        for labels, v in _increases(snapshot, previous, "driftline_http_requests_total")
        if labels.get("endpoint") not in UNWATCHED_ENDPOINTS
    ]
    total = sum(v for _, v in grown)
    errors = sum(v for labels, v in grown if labels.get("status", "").startswith("5"))
    if total < thresholds.min_requests:
        return UNKNOWN
    return _band(
        [({}, errors / total)],
        fire=lambda v: v > thresholds.error_rate,
        hold=lambda v: v >= thresholds.error_rate_resolve,
    )


def _latency_p99(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> Evaluation:
    if previous is None:
        return UNKNOWN
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
    p99 = histogram_quantile(0.99, list(by_le.items()))
    if total < thresholds.min_requests or p99 is None:
        return UNKNOWN
    return _band(
        [({}, p99)],
        fire=lambda v: v > thresholds.latency_p99_seconds,
        hold=lambda v: v >= thresholds.latency_p99_resolve_seconds,
    )


def _low_confidence(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> Evaluation:
    if previous is None:
        return UNKNOWN
    count = sum(
        v for _, v in _increases(snapshot, previous, "driftline_prediction_confidence_count")
    )
    total = sum(v for _, v in _increases(snapshot, previous, "driftline_prediction_confidence_sum"))
    if count < thresholds.min_predictions:
        return UNKNOWN
    return _band(
        [({}, total / count)],
        fire=lambda v: v < thresholds.min_confidence,
        hold=lambda v: v <= thresholds.min_confidence_resolve,
    )


def _no_champion(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None
) -> list[Match] | Evaluation:
    loaded = snapshot.get("driftline_model_loaded")
    if loaded is None:
        return UNKNOWN
    return [({}, loaded)] if loaded < 1 else []


def _accuracy_drop(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> Evaluation:
    if _no_report(snapshot):
        return UNKNOWN
    estimate = snapshot.get("driftline_estimated_accuracy", bound="estimate")
    reference = snapshot.get("driftline_reference_accuracy")
    if estimate is None or reference is None or not (_finite(estimate) and _finite(reference)):
        return UNKNOWN
    if reference <= 0:  # the gauge's zero default: no reference known
        return UNKNOWN
    return _band(
        [({}, reference - estimate)],
        fire=lambda v: v > thresholds.accuracy_drop,
        hold=lambda v: v >= thresholds.accuracy_drop_resolve,
    )


def _realized_accuracy(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
) -> Evaluation:
    if _no_report(snapshot):
        return UNKNOWN
    realized = snapshot.get("driftline_realized_performance", metric="accuracy")
    reference = snapshot.get("driftline_reference_accuracy")
    labeled = snapshot.get("driftline_realized_labeled_predictions")
    if realized is None or reference is None or labeled is None:
        return UNKNOWN  # no labels in the window, or no reference
    if not (_finite(realized) and _finite(reference)) or reference <= 0:
        return UNKNOWN
    if labeled < thresholds.min_labels:
        return UNKNOWN  # ten labels are not an accuracy
    return _band(
        [({}, reference - realized)],
        fire=lambda v: v > thresholds.realized_accuracy_drop,
        hold=lambda v: v >= thresholds.realized_accuracy_drop_resolve,
    )


def _rollback(
    snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None
) -> list[Match] | Evaluation:
    if previous is None:
        return UNKNOWN
    return [
        ({"actor": labels.get("actor", "")}, grown)
        for labels, grown in _increases(snapshot, previous, "driftline_rollbacks_total")
        if grown > 0
    ]


def _predictions_between(old: MetricSnapshot, new: MetricSnapshot) -> float:
    return sum(v for _, v in _increases(new, old, "driftline_predictions_total"))


def _traffic(
    snapshot: MetricSnapshot,
    now: float | None,
    history: MetricHistory | None,
    thresholds: AlertThresholds,
) -> tuple[float, float, float] | None:
    """``(predictions in the recent window, predictions before it, seconds before it)``, from
    the history: the recent window is ``traffic_window_seconds`` long, the baseline the hour
    before it (or as much of it as the history holds, at least one window). ``None`` when the
    history is too short to tell."""
    if now is None or history is None or len(history) == 0:
        return None
    window = thresholds.traffic_window_seconds
    start = history.at(now - window)
    if start is None:
        return None
    start_t, start_snap = start
    base = history.at(start_t - 3600.0) or history.first()
    base_t, base_snap = base
    if start_t - base_t < window:
        return None  # a baseline shorter than the window says little
    recent = _predictions_between(start_snap, snapshot)
    before = _predictions_between(base_snap, start_snap)
    return recent, before, start_t - base_t


def _predictions_stopped(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
    history: MetricHistory | None = None,
) -> Evaluation:
    found = _traffic(snapshot, now, history, thresholds)
    if found is None:
        if now is not None and history is not None and len(history) > 0:
            # Too little history for a baseline (a restart), but predictions within the
            # window mean traffic flows: a stop that was firing is over.
            start = history.at(now - thresholds.traffic_window_seconds) or history.first()
            if _predictions_between(start[1], snapshot) > 0:
                return Evaluation()
        return UNKNOWN
    recent, before, _ = found
    if recent > 0:
        return Evaluation()
    if before >= thresholds.min_predictions:
        return Evaluation(firing=(({}, before),))
    # Nothing now and nothing before either (as Prometheus sees it an hour after the stop):
    # quiet by now, so a service idle by design (nights) does not page all night.
    return Evaluation()


def _traffic_drop(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None,
    now: float | None,
    *,
    thresholds: AlertThresholds,
    history: MetricHistory | None = None,
) -> Evaluation:
    found = _traffic(snapshot, now, history, thresholds)
    if found is None:
        return UNKNOWN
    recent, before, seconds = found
    if before < thresholds.min_predictions:
        return UNKNOWN  # no traffic to compare with
    if recent <= 0:
        return Evaluation()  # stopped: DriftlinePredictionsStopped's case
    ratio = (recent / thresholds.traffic_window_seconds) / (before / seconds)
    return _band(
        [({}, ratio)],
        fire=lambda v: v < thresholds.traffic_drop_ratio,
        hold=lambda v: v <= thresholds.traffic_drop_resolve_ratio,
    )


def builtin_rules(
    thresholds: AlertThresholds | None = None,
    durations: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[RuleSpec, ...]:
    """The built-in rule set, one rule per name of :data:`ALERT_NAMES` (in that order).

    ``durations`` maps rule names to ``(for, keep_firing_for)`` seconds, replacing those of
    :data:`DEFAULT_DURATIONS`.

    Example
    -------
    >>> [r.name for r in builtin_rules()] == list(ALERT_NAMES)
    True
    >>> latency = builtin_rules(durations={"DriftlineHighLatencyP99": (60.0, 0.0)})[8]
    >>> latency.name, latency.for_seconds, latency.keep_firing_for_seconds
    ('DriftlineHighLatencyP99', 60.0, 0.0)
    """
    t = AlertThresholds() if thresholds is None else thresholds
    times = {**DEFAULT_DURATIONS, **(durations or {})}
    unknown = sorted(set(times) - set(ALERT_NAMES))
    if unknown:
        raise ConfigurationError(
            f"rules: unknown alert {unknown[0]!r} (built-in: {', '.join(ALERT_NAMES)})"
        )
    with_t = functools.partial

    def rule(
        name: str,
        severity: Severity,
        summary: str,
        condition: Condition,
        description: str,
        *,
        uses_history: bool = False,
    ) -> RuleSpec:
        for_seconds, keep = times[name]
        return RuleSpec(
            name,
            severity,
            summary,
            condition,
            description,
            for_seconds=for_seconds,
            keep_firing_for_seconds=keep,
            uses_history=uses_history,
        )

    return (
        rule(
            FEATURE_DRIFT_CRITICAL,
            "critical",
            "Feature {feature} drifted (critical)",
            with_t(_feature_drift, level=2.0),
            "The latest monitor report found a critical, significant shift in feature "
            "{feature}. Compare its reference and window distributions in the report.",
        ),
        rule(
            FEATURE_DRIFT_WARNING,
            "warning",
            "Feature {feature} drifted (warning)",
            with_t(_feature_drift, level=1.0),
            "The latest monitor report found a significant shift of warning size in feature "
            "{feature}.",
        ),
        rule(
            PREDICTION_DRIFT_CRITICAL,
            "critical",
            "Critical drift in the model's predictions",
            with_t(_prediction_drift, level=2.0),
            "The distribution of the champion's outputs moved far from the reference.",
        ),
        rule(
            PREDICTION_DRIFT_WARNING,
            "warning",
            "Drift warning in the model's predictions",
            with_t(_prediction_drift, level=1.0),
            "The distribution of the champion's outputs moved away from the reference.",
        ),
        rule(
            REPORT_STALE,
            "warning",
            "No monitor report for {value:.0f} s",
            with_t(_report_stale, thresholds=t),
            f"The latest monitor report is older than {t.report_stale_seconds:g} s: the "
            "monitor job is not running or failing, so drift goes unwatched.",
        ),
        rule(
            DATA_QUALITY_HARD_FAILURE,
            "critical",
            "Data-quality check {check} failed hard",
            _quality_hard,
            "{value:g} hard failure(s) of the {check} check in the latest report.",
        ),
        rule(
            HIGH_MISSING_RATE,
            "warning",
            "Feature {feature} is missing in {value:.1%} of requests",
            with_t(_missing_rate, thresholds=t),
            f"The missing share of feature {{feature}} exceeds {t.missing_rate:g} in the "
            "latest window.",
        ),
        rule(
            HIGH_ERROR_RATE,
            "critical",
            "{value:.1%} of requests failed with 5xx",
            with_t(_error_rate, thresholds=t),
            f"The share of 5xx answers over the last {t.rate_window_seconds:g} s exceeds "
            f"{t.error_rate:g}.",
        ),
        rule(
            HIGH_LATENCY_P99,
            "warning",
            "/predict p99 latency is {value:.3g} s",
            with_t(_latency_p99, thresholds=t),
            f"The 99th percentile of /predict answer times over the last "
            f"{t.rate_window_seconds:g} s exceeds {t.latency_p99_seconds:g} s.",
        ),
        rule(
            LOW_CONFIDENCE,
            "warning",
            "Mean prediction confidence fell to {value:.3f}",
            with_t(_low_confidence, thresholds=t),
            f"The mean probability of the predicted class over the last "
            f"{t.rate_window_seconds:g} s is below {t.min_confidence:g}: the model sees inputs "
            "unlike its training data.",
        ),
        rule(
            NO_CHAMPION,
            "critical",
            "No champion model is loaded",
            _no_champion,
            "The service has no model to serve: /predict answers 503.",
        ),
        rule(
            ACCURACY_DROP,
            "warning",
            "Estimated accuracy is {value:.3f} below the reference",
            with_t(_accuracy_drop, thresholds=t),
            f"The label-free accuracy estimate (doubly robust or CBPE, as the report says) "
            f"fell more than {t.accuracy_drop:g} below the champion's holdout accuracy.",
        ),
        rule(
            ROLLBACK,
            "warning",
            "The champion was rolled back (by {actor})",
            _rollback,
            "{value:g} rollback(s) by {actor} in the last few minutes.",
        ),
        rule(
            PREDICTIONS_STOPPED,
            "critical",
            f"No predictions in the last {t.traffic_window_seconds:g} s",
            with_t(_predictions_stopped, thresholds=t),
            f"driftline served no prediction in the last {t.traffic_window_seconds:g} s after "
            "{value:g} in the hour before: clients stopped calling, or cannot reach it.",
            uses_history=True,
        ),
        rule(
            TRAFFIC_DROP,
            "warning",
            "Prediction traffic fell to {value:.0%} of the trailing hour",
            with_t(_traffic_drop, thresholds=t),
            f"The prediction rate of the last {t.traffic_window_seconds:g} s is below "
            f"{t.traffic_drop_ratio:g} of its rate in the hour before.",
            uses_history=True,
        ),
        rule(
            REALIZED_ACCURACY_LOW,
            "critical",
            "Accuracy on labels is {value:.3f} below the reference",
            with_t(_realized_accuracy, thresholds=t),
            f"On the labelled predictions of the latest window (at least {t.min_labels}), the "
            f"accuracy is more than {t.realized_accuracy_drop:g} below the champion's holdout "
            "accuracy: a drop confirmed by ground truth.",
        ),
    )


def evaluate_rules(
    snapshot: MetricSnapshot,
    *,
    now: float,
    previous: MetricSnapshot | None = None,
    rules: tuple[RuleSpec, ...] | None = None,
    history: MetricHistory | None = None,
) -> list[Alert]:
    """Every alert past its firing threshold in ``snapshot``, without state (no ``for``, no
    hysteresis; :class:`~driftline.alerts.RuleEngine` adds those).

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
        alerts += rule.evaluate(snapshot, previous=previous, now=now, history=history)
    return alerts
