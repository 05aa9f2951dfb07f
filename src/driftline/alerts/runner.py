"""The built-in alerting run: metrics → rules → manager → store and notifiers.

Run by the scheduler's leader after each monitor report and every
``DRIFTLINE_ALERTS_INTERVAL_SECONDS``. Rate-based rules compare with the previous evaluation of
the same leader (a new leader needs two runs before those rules can fire). The manager's
state lives in the store, so deduplication and resolve messages survive restarts and leader
changes; every firing episode is a row in the ``alerts`` table (``GET /alerts``,
``driftline alerts``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from driftline.alerts.config import AlertsConfig
from driftline.alerts.manager import AlertManager
from driftline.alerts.model import MetricSnapshot, Notification
from driftline.alerts.notifiers import dispatch
from driftline.alerts.rules import evaluate_rules
from driftline.service.metrics import ServiceMetrics
from driftline.store import Store, queries

__all__ = ["AlertRunner"]

log = logging.getLogger(__name__)


class AlertRunner:
    def __init__(
        self, *, store: Store, metrics: ServiceMetrics, config: AlertsConfig, model_name: str
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.config = config
        self.state_key = f"alerts:{model_name}"
        # Rate rules (errors, rollbacks) compare with the previous evaluation: the metrics as
        # they are now are the first "previous", so what happens before the first run counts.
        self.previous: MetricSnapshot | None = MetricSnapshot.from_exposition(
            metrics.render().decode()
        )

    def _manager(self) -> AlertManager:
        with self.store.sessions() as session:
            state = queries.get_state(self.state_key, session=session)
        if not state:
            return self.config.manager()
        try:
            return AlertManager.from_dict(
                state,
                group_by=self.config.group_by,
                group_wait=self.config.group_wait,
                repeat_interval=self.config.repeat_interval,
            )
        except Exception as exc:  # a state from an older format: start afresh
            log.warning("alert manager state unreadable (%s); starting afresh", exc)
            return self.config.manager()

    def run(self, now: float | None = None) -> list[Notification]:
        """Evaluate the rules now; record, notify, and return the notifications sent."""
        now = time.time() if now is None else now
        snapshot = MetricSnapshot.from_exposition(self.metrics.render().decode())
        alerts = evaluate_rules(
            snapshot, now=now, previous=self.previous, rules=self.config.rules()
        )
        self.previous = snapshot
        manager = self._manager()
        before = {e.alert.fingerprint: e for e in manager.active()}
        notifications = manager.process(alerts, now)
        after = {e.alert.fingerprint: e for e in manager.active()}
        with self.store.sessions.begin() as session:
            for fp, event in after.items():
                if fp not in before:
                    a = event.alert
                    queries.open_alert(
                        session=session,
                        fingerprint=fp,
                        name=a.name,
                        severity=a.severity,
                        labels=dict(a.labels),
                        summary=a.summary,
                        description=a.description,
                        value=a.value,
                        starts_at=event.starts_at,
                    )
            for fp in before:
                if fp not in after:
                    queries.resolve_alert(session=session, fingerprint=fp, ends_at=now)
            queries.put_state(self.state_key, manager.to_dict(), session=session)
        for notification in notifications:
            self._deliver(notification)
        self.metrics.alerts_firing.clear()
        counts = Counter((e.alert.name, e.alert.severity) for e in after.values())
        for (name, severity), n in counts.items():
            self.metrics.alerts_firing.labels(alertname=name, severity=severity).set(n)
        return notifications

    def _deliver(self, notification: Notification) -> None:
        results = dispatch(
            notification,
            router=self.config.router,
            notifiers=self.config.notifiers,
            policy=self.config.retry,
        )
        delivered: list[str] = []
        for result in results:
            self.metrics.notifications.labels(
                notifier=result.notifier, result="ok" if result.ok else "error"
            ).inc()
            if result.ok:
                delivered.append(result.notifier)
            else:
                log.warning("notification to %s failed: %s", result.notifier, result.error)
        details: dict[str, Any] = {
            "kind": notification.kind,
            "group": notification.group_key,
            "alerts": [e.alert.name for e in notification.alerts],
            "delivered": delivered,
            "failed": [r.notifier for r in results if not r.ok],
        }
        with self.store.sessions.begin() as session:
            for event in notification.alerts:
                for notifier in delivered:
                    queries.mark_notified(
                        session=session, fingerprint=event.alert.fingerprint, notifier=notifier
                    )
            queries.add_audit(
                session=session,
                kind="alert",
                actor="alerting",
                message=f"{notification.kind}: {notification.title}",
                details=details,
                success=all(r.ok for r in results),
            )
