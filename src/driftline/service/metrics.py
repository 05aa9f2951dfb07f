"""Prometheus metrics of the service. One ``driftline_`` prefix, base units, ``_total``
counters, bounded label values (endpoint templates, status codes, class labels of the schema;
never request ids).

Each app owns a :class:`ServiceMetrics` on its own registry, so several apps can live in one
process (tests). With ``driftline serve --workers N`` the workers share
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates them.
"""

from __future__ import annotations

import os
from typing import Any, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from driftline.store.writer import WriterListener

__all__ = [
    "CONTENT_TYPE_LATEST",
    "ServiceMetrics",
    "WriterMetricsListener",
    "multiprocess_dir",
]

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONFIDENCE_BUCKETS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


def multiprocess_dir() -> str | None:
    """The shared metrics folder of a multi-worker server, if this process is one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServiceMetrics:
    """Every metric the API exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.http_requests = Counter(
            "driftline_http_requests_total",
            "HTTP requests by endpoint template, method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "driftline_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint template.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.feast_lookup = Histogram(
            "driftline_feast_lookup_seconds",
            "Time of one Feast online lookup (entity rows of one or more requests), by "
            "outcome: ok, not_found, error.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prediction_latency = Histogram(
            "driftline_prediction_latency_seconds",
            "Time from a validated request to its prediction (queueing and model call).",
            ["variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "driftline_predictions_total",
            "Predictions served, by variant and predicted class.",
            ["variant", "predicted_class"],
            registry=r,
        )
        self.prediction_errors = Counter(
            "driftline_prediction_errors_total",
            "Requests that failed after validation, by reason.",
            ["reason"],
            registry=r,
        )
        self.rejected = Counter(
            "driftline_rejected_requests_total",
            "Requests refused before prediction, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=r,
        )
        self.confidence = Histogram(
            "driftline_prediction_confidence",
            "Probability of the predicted class.",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "driftline_model_batch_rows",
            "Rows per model call (micro-batches and /predict/batch).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.request_batch_size = Histogram(
            "driftline_request_batch_rows",
            "Rows per /predict/batch request.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.model_version = Gauge(
            "driftline_model_version",
            "Model version behind each alias, as this worker sees it (0: none).",
            ["alias"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_info = Gauge(
            "driftline_model_info",
            "1 for the model this worker serves, labelled with its version and kind.",
            ["version", "kind"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_loaded = Gauge(
            "driftline_model_loaded",
            "1 when a champion is loaded and serving.",
            registry=r,
            multiprocess_mode="min",
        )
        self.reloads = Counter(
            "driftline_model_reloads_total",
            "Model swaps after an alias move (result=ok) and failed reload attempts.",
            ["result"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "driftline_writer_queue_depth",
            "Records waiting in the prediction-log queue.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_capacity = Gauge(
            "driftline_writer_queue_capacity",
            "Capacity of the prediction-log queue.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.writer_lag = Gauge(
            "driftline_writer_lag_seconds",
            "Age of the oldest record in the last batch committed to the store.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.records_written = Counter(
            "driftline_records_written_total",
            "Records committed to the store, by kind.",
            ["kind"],
            registry=r,
        )
        self.records_spilled = Counter(
            "driftline_records_spilled_total",
            "Records written to the local spill log while the store was unreachable.",
            ["kind"],
            registry=r,
        )
        self.records_replayed = Counter(
            "driftline_records_replayed_total",
            "Records moved from the spill log into the store.",
            ["kind"],
            registry=r,
        )
        self.records_dead_lettered = Counter(
            "driftline_records_dead_lettered_total",
            "Records the store refused (encoding, constraint, value), kept as dead letters.",
            ["kind"],
            registry=r,
        )
        for kind in ("prediction", "label", "bucket", "shadow"):
            self.records_dead_lettered.labels(kind=kind)
        self.writer_oldest_unwritten = Gauge(
            "driftline_writer_oldest_unwritten_seconds",
            "Age of the oldest record not yet in the store (queued, being written, or spilled "
            "and not replayed); 0 when the writer has drained.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_full = Counter(
            "driftline_queue_full_total",
            "Requests answered 503 because the prediction-log queue stayed full.",
            registry=r,
        )
        self.store_up = Gauge(
            "driftline_store_up",
            "1 when the store is reachable from this worker.",
            registry=r,
            multiprocess_mode="min",
        )
        self.labels = Counter(
            "driftline_labels_total",
            "Labels acknowledged, by where they were made durable (store or spill).",
            ["durable"],
            registry=r,
        )
        self.ws_clients = Gauge(
            "driftline_websocket_clients",
            "Connected WebSocket clients.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ws_dropped = Counter(
            "driftline_websocket_events_dropped_total",
            "Events not sent to a WebSocket client (rate cap or full buffer).",
            registry=r,
        )

        # --- monitoring (refreshed from the latest report; see monitor/) --------------------
        self.feature_drift_statistic = Gauge(
            "driftline_feature_drift_statistic",
            "Test statistic of the latest drift check, per feature and test.",
            ["feature", "test"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.feature_drift_p_value = Gauge(
            "driftline_feature_drift_p_value",
            "Benjamini-Hochberg adjusted p-value of the latest drift check, per feature.",
            ["feature"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.feature_drift_effect_size = Gauge(
            "driftline_feature_drift_effect_size",
            "Effect size of the latest drift check, per feature and measure.",
            ["feature", "measure"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.feature_drift_severity = Gauge(
            "driftline_feature_drift_severity",
            "Drift verdict per feature: -1 insufficient data, 0 none, 1 warning, 2 critical.",
            ["feature"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.feature_missing_rate = Gauge(
            "driftline_feature_missing_rate",
            "Share of missing values per feature in the latest window.",
            ["feature"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.dataset_drift_severity = Gauge(
            "driftline_dataset_drift_severity",
            "Dataset-level drift verdict: -1 insufficient data, 0 none, 1 warning, 2 critical.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.prediction_drift_severity = Gauge(
            "driftline_prediction_drift_severity",
            "Prediction (model output) drift verdict: -1 insufficient, 0 none, 1 warn, 2 crit.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.quality_failures = Gauge(
            "driftline_quality_check_failures",
            "Failed data-quality checks in the latest report, by check and severity.",
            ["check", "severity"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.estimated_accuracy = Gauge(
            "driftline_estimated_accuracy",
            "Label-free accuracy estimate of the latest window (doubly robust or CBPE, as the "
            "report's performance.estimator says); bound=estimate|lower|upper.",
            ["bound"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.reference_accuracy = Gauge(
            "driftline_reference_accuracy",
            "Holdout accuracy of the champion at training time.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.realized_performance = Gauge(
            "driftline_realized_performance",
            "Metrics on labelled predictions of the latest window, by metric.",
            ["metric"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.realized_labeled = Gauge(
            "driftline_realized_labeled_predictions",
            "Labelled predictions behind driftline_realized_performance (latest window).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.concept_drift_state = Gauge(
            "driftline_concept_drift_state",
            "Concept-drift detector state: 0 stable, 1 warning, 2 drift confirmed.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.concept_drift_alarms = Counter(
            "driftline_concept_drift_alarms_total",
            "Confirmed concept-drift alarms.",
            registry=r,
        )
        self.drift_alarms = Counter(
            "driftline_drift_alarms_total",
            "Monitor runs that found drift, by kind (data, prediction) and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.last_report = Gauge(
            "driftline_last_report_timestamp_seconds",
            "UNIX time of the latest monitor report (staleness = time() - this).",
            registry=r,
            multiprocess_mode="max",
        )
        self.monitor_runs = Counter(
            "driftline_monitor_runs_total",
            "Monitor runs, by result (ok, error).",
            ["result"],
            registry=r,
        )
        # --- the closed loop -------------------------------------------------------------------
        self.retrains = Counter(
            "driftline_retrains_total",
            "Challenger trainings, by trigger (concept_drift, data_drift, performance, manual).",
            ["trigger"],
            registry=r,
        )
        self.gate_decisions = Counter(
            "driftline_gate_decisions_total",
            "Promotion-gate decisions, by decision (promote, reject).",
            ["decision"],
            registry=r,
        )
        self.promotions = Counter(
            "driftline_promotions_total",
            "Challengers promoted to champion.",
            registry=r,
        )
        self.rollbacks = Counter(
            "driftline_rollbacks_total",
            "Champion rollbacks, by actor (slo_guard, manual).",
            ["actor"],
            registry=r,
        )
        # Known label values start at 0, so rate() and increase() see the first event.
        for actor in ("slo_guard", "manual"):
            self.rollbacks.labels(actor=actor)
        for decision in ("promote", "reject"):
            self.gate_decisions.labels(decision=decision)
        for trigger in ("concept_drift", "data_drift", "performance", "manual"):
            self.retrains.labels(trigger=trigger)
        self.canary_share = Gauge(
            "driftline_canary_share",
            "Share of traffic the canary serves (0 outside a canary stage).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.rollout_stage = Gauge(
            "driftline_rollout_stage",
            "Rollout stage: 0 none, 1 shadow, 2 canary, 3 watching after promotion.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.shadow_skipped = Counter(
            "driftline_shadow_skipped_total",
            "Requests not copied to the shadowing challenger (shadow work or log queue full).",
            registry=r,
        )
        # --- online learning (see service/online_learning.py) -----------------------------------
        self.online_learned = Counter(
            "driftline_online_learned_labels_total",
            "Labels the serving online champion learned (learn_one), by result "
            "(learned, skipped: unknown class or unusable features).",
            ["result"],
            registry=r,
        )
        self.online_checkpoints = Counter(
            "driftline_online_checkpoints_total",
            "Checkpoints of the online champion registered, by result (ok, error, superseded).",
            ["result"],
            registry=r,
        )
        # --- alerts ---------------------------------------------------------------------------
        self.alerts_firing = Gauge(
            "driftline_alerts_firing",
            "Alerts firing in the built-in alerting, by alert name and severity.",
            ["alertname", "severity"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.notifications = Counter(
            "driftline_notifications_total",
            "Notifications sent, by notifier and result (ok, error).",
            ["notifier", "result"],
            registry=r,
        )

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: the hot path's metrics take a few label
        sets only, and ``labels()`` costs a lock and a validation on every call."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def render(self) -> bytes:
        """The text exposition of this app's metrics (all workers' in multi-worker mode)."""
        folder = multiprocess_dir()
        if folder:
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(merged))
        return bytes(generate_latest(self.registry))

    @staticmethod
    def forget(gauge: Gauge, stale: float) -> None:
        """Drop every labelled series of ``gauge`` before it is set afresh (features of a new
        report, the served version, firing alerts).

        One process: ``clear()``. Several workers: prometheus_client cannot remove a series
        from the shared files (``clear()`` only warns), so a series that vanished would keep
        its last value forever -- a dropped feature's "critical" severity would keep an alert
        rule firing. There each series this process wrote is set to ``stale`` instead: 0 for
        counts and flags, NaN for "no current value" (every comparison with NaN is false, so
        no rule fires on it); the series set again right after overwrite it.
        """
        if multiprocess_dir() is None:
            gauge.clear()
            return
        with gauge._lock:  # prometheus_client keeps a metric's children there
            children = cast("list[Gauge]", list(gauge._metrics.values()))
        for child in children:
            child.set(stale)

    def set_model(self, alias: str, version: int | None, kind: str | None = None) -> None:
        self.model_version.labels(alias=alias).set(version or 0)
        if alias == "champion":
            self.forget(self.model_info, 0.0)
            if version is not None:
                self.model_info.labels(version=str(version), kind=kind or "unknown").set(1)
            self.model_loaded.set(1 if version is not None else 0)

    def describe(self) -> dict[str, Any]:
        """Metric names and help texts (used by docs and the Grafana check)."""
        return {m.name: m.documentation for m in self.registry.collect()}


class WriterMetricsListener(WriterListener):
    """The store writer's events as service metrics (API workers and stream consumers)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def written(self, kind: str, n: int, lag_seconds: float) -> None:
        self.metrics.records_written.labels(kind=kind).inc(n)
        self.metrics.writer_lag.set(lag_seconds)

    def spilled(self, kind: str, n: int) -> None:
        self.metrics.records_spilled.labels(kind=kind).inc(n)

    def replayed(self, kind: str, n: int) -> None:
        self.metrics.records_replayed.labels(kind=kind).inc(n)

    def dead_lettered(self, kind: str, n: int) -> None:
        self.metrics.records_dead_lettered.labels(kind=kind).inc(n)

    def store_state(self, up: bool) -> None:
        self.metrics.store_up.set(1 if up else 0)
