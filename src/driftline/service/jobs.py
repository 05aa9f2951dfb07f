"""The bodies of the jobs the scheduler's leader runs, in threads: concept drift, the monitor
report, the closed loop, the alert rules and retention; with what each counts and publishes.

Every worker also shows the latest report's figures in its gauges, whoever wrote it
(:meth:`WorkerJobs.export_if_new`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from driftline.alerts.config import AlertsConfig, load_alerts_config
from driftline.alerts.runner import AlertRunner
from driftline.config import Settings
from driftline.drift.decision import DriftPolicy
from driftline.loop.controller import ACTIVE_STAGES, RolloutController, read_rollout
from driftline.models.bundle import ModelBundle
from driftline.monitoring.concept import update_concept
from driftline.monitoring.exporter import export_report
from driftline.monitoring.monitor import MonitorOptions, run_monitor
from driftline.registry import CHAMPION, Registry
from driftline.scheduler import Job
from driftline.service.metrics import ServiceMetrics
from driftline.store import Store, queries

__all__ = ["WorkerJobs"]

log = logging.getLogger(__name__)


class WorkerJobs:
    """The scheduled jobs of one worker.

    Parameters
    ----------
    served
        The champion bundle the worker serves now (the closed loop continues an online one).
    write_recent
        Writes the worker's own recent traffic (window buckets, queued records) before a job
        reads the store.
    publish
        Publishes a live event from a job thread.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics,
        *,
        store: Store,
        registry: Registry,
        served: Callable[[], ModelBundle | None],
        write_recent: Callable[[], None],
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.registry = registry
        self._served = served
        self._write_recent = write_recent
        self._publish = publish
        self._alerts: AlertRunner | None = None
        self._concept_lock = threading.Lock()
        self._alerts_lock = threading.Lock()
        #: The report whose figures the gauges show.
        self.exported_report: int | None = None

    def schedule(self) -> list[Job]:
        """The jobs to run, with their periods."""
        s = self.settings
        jobs = [
            Job("concept", s.concept_poll_seconds, self.concept),
            Job("monitor", s.monitor_interval_seconds, self.monitor),
            Job("retention", 3_600.0, self.retention),
        ]
        if s.loop_enabled:
            jobs.append(Job("loop", s.loop_interval_seconds, self.loop))
        if s.alerts_enabled:
            jobs.append(Job("alerts", s.alerts_interval_seconds, self.alerts))
        return jobs

    @property
    def alert_runner(self) -> AlertRunner:
        if self._alerts is None:
            config = (
                load_alerts_config(self.settings.alerts_config)
                if self.settings.alerts_config is not None
                else AlertsConfig()
            )
            self._alerts = AlertRunner(
                store=self.store,
                metrics=self.metrics,
                config=config,
                model_name=self.settings.model_name,
            )
        return self._alerts

    def alerts(self) -> None:
        # Run by its own schedule, after each report and after a rollback: one at a time, so
        # a firing alert is recorded and notified once.
        with self._alerts_lock:
            notifications = self.alert_runner.run()
        for notification in notifications:
            self._publish(
                {
                    "type": "alert",
                    "kind": notification.kind,
                    "title": notification.title,
                    "severity": notification.severity,
                    "alerts": [e.alert.name for e in notification.alerts],
                    "ts": notification.created,
                }
            )

    def concept(self) -> None:
        version = self.registry.alias(CHAMPION)
        if version is None:
            return
        # The concept job and the monitor job (which runs it first) may overlap: one at a
        # time reads the label cursor, feeds the detectors and writes the state back.
        with self._concept_lock:
            update = update_concept(self.store, self.settings.model_name, version)
        if update.drifts:
            self.metrics.concept_drift_alarms.inc(len(update.drifts))
            for drift in update.drifts:
                self._publish({"type": "alert", "kind": "concept_drift", **drift})

    def monitor(self) -> dict[str, Any] | None:
        if self.registry.alias(CHAMPION) is None:
            return None
        self._write_recent()
        self.concept()
        try:
            body = run_monitor(
                store=self.store,
                registry=self.registry,
                options=MonitorOptions(
                    window_seconds=self.settings.monitor_window_seconds,
                    bucket_seconds=self.settings.monitor_bucket_seconds,
                    drift=DriftPolicy(report=self.settings.drift_report),
                    estimator=self.settings.monitor_estimator,
                ),
            )
        except Exception:
            self.metrics.monitor_runs.labels(result="error").inc()
            raise
        self.metrics.monitor_runs.labels(result="ok").inc()
        for kind in ("data_drift", "prediction_drift"):
            severity = (body.get(kind) or {}).get("severity")
            if severity in ("warning", "critical"):
                self.metrics.drift_alarms.labels(
                    kind=kind.removesuffix("_drift"), severity=severity
                ).inc()
        export_report(self.metrics, body)
        self.exported_report = body.get("id")
        if self.settings.alerts_enabled:
            try:
                self.alerts()  # evaluate right after the figures changed
            except Exception as exc:
                log.warning("alerting after the report failed: %s", exc)
        self._publish(
            {
                "type": "report",
                "id": body.get("id"),
                "ts": body.get("ts"),
                "status": body["status"],
                "data_drift": body["data_drift"]["severity"],
                "drifted_features": [
                    f["feature"]
                    for f in body["data_drift"]["features"]
                    if f["severity"] in ("warning", "critical")
                ],
            }
        )
        return body

    def loop(self) -> dict[str, Any] | None:
        """The closed loop, once: advance an active rollout, else retrain if triggered."""
        from driftline.loop.retrain import retrain  # noqa: PLC0415 — the training stack on the first loop run

        # The leader's own recent traffic counts too: write its buckets and log first.
        self._write_recent()
        controller = RolloutController(
            self.store, self.registry, self.settings, on_event=self.loop_event
        )
        step = controller.step()
        if step is not None:
            return {"rollout": step.state, "verdict": step.verdict.action}
        state = read_rollout(self.store, self.settings.model_name)
        if state is not None and state.get("stage") in ACTIVE_STAGES:
            return None
        if self.registry.alias(CHAMPION) is None:
            return None
        outcome = retrain(
            self.store, self.registry, self.settings, actor="loop", served=self._served()
        )
        if outcome.challenger_version is None:
            return None
        for trigger in outcome.trigger.triggers:
            self.metrics.retrains.labels(trigger=trigger).inc()
        assert outcome.gate is not None
        self.metrics.gate_decisions.labels(
            decision="promote" if outcome.gate.promote else "reject"
        ).inc()
        self.loop_event(
            {
                "type": "gate",
                "version": outcome.challenger_version,
                "promote": outcome.gate.promote,
                "reason": outcome.gate.reason,
                "triggers": list(outcome.trigger.triggers),
            }
        )
        return {"retrain": outcome.challenger_version, "promote": outcome.gate.promote}

    def loop_event(self, event: dict[str, Any]) -> None:
        """A closed-loop decision: count it, show it live, and alert on rollbacks."""
        kind = event.get("type")
        if kind == "promotion":
            self.metrics.promotions.inc()
        elif kind == "rollback":
            self.metrics.rollbacks.labels(actor=str(event.get("actor", "slo_guard"))).inc()
        self._publish({"ts": time.time(), **event})
        if kind == "rollback" and self.settings.alerts_enabled:
            try:
                self.alerts()  # the rollback rule notifies right away
            except Exception as exc:
                log.warning("alerting after the rollback failed: %s", exc)

    def retention(self) -> None:
        cutoff = time.time() - self.settings.retention_days * 86_400
        with self.store.sessions.begin() as session:
            queries.delete_buckets_before(cutoff, session=session)

    # --- every worker ---------------------------------------------------------------------------

    def latest_report(self) -> queries.ReportRow | None:
        with self.store.sessions() as session:
            return queries.latest_report(session=session, model_name=self.settings.model_name)

    def export_if_new(self, latest: queries.ReportRow) -> None:
        """Show the figures of ``latest`` in the gauges unless they show them already."""
        if latest.id != self.exported_report:
            export_report(self.metrics, latest.body)
            self.exported_report = latest.id
