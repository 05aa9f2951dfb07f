"""The built-in alerting run: metrics → rules → rule engine → manager → store and notifiers.

Run by the scheduler's leader after each monitor report and every
``DRIFTLINE_ALERTS_INTERVAL_SECONDS``. Rate rules compare with the snapshot taken
``rate_window_seconds`` before (or the oldest this runner has, right after start); the traffic
rules read the trailing hour of snapshots this runner kept. Those snapshots live in memory:
after a restart or a leader change the rate and traffic rules cannot judge until enough
history exists, and their alerts keep their state meanwhile.

Everything else lives in the store and is read back on every run, so it survives restarts and
leader changes: the rule engine's state (pending alerts with the time they became active,
firing alerts, the clear timers of ``keep_firing_for``) and the manager's (what was announced,
when it was last sent). Every firing episode is a row in the ``alerts`` table (``GET /alerts``,
``driftline alerts``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftline.alerts.config import AlertsConfig
from driftline.alerts.engine import RuleEngine
from driftline.alerts.manager import AlertManager
from driftline.alerts.model import MetricHistory, MetricSnapshot, Notification
from driftline.alerts.notifiers import dispatch
from driftline.store import Store, queries

if TYPE_CHECKING:  # the service imports this module: no import of the service at run time
    from driftline.service.metrics import ServiceMetrics

__all__ = ["HISTORY_SERIES", "AlertRunner"]

log = logging.getLogger(__name__)

HISTORY_SERIES = frozenset(
    {
        "driftline_http_requests_total",
        "driftline_http_request_duration_seconds_bucket",
        "driftline_prediction_confidence_count",
        "driftline_prediction_confidence_sum",
        "driftline_predictions_total",
        "driftline_rollbacks_total",
    }
)
"""The series the rate and traffic rules read from earlier snapshots (the rest is not kept)."""


class AlertRunner:
    """Evaluate the built-in rules on the service's metrics, keep their state in the store,
    notify.

    Parameters
    ----------
    store, metrics, config, model_name
        Where state and episodes go, what is judged, the rules, notifiers and routes, and the
        model whose alerts these are (it names the state).
    clock
        UNIX time now (default :func:`time.time`); tests pass their own.
    """

    def __init__(
        self,
        *,
        store: Store,
        metrics: ServiceMetrics,
        config: AlertsConfig,
        model_name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self.rules = config.rules()
        self.state_key = f"alerts:{model_name}"
        self.engine_key = f"alerts:{model_name}:rules"
        thresholds = config.thresholds
        self.keep_seconds = (
            max(thresholds.rate_window_seconds, thresholds.traffic_window_seconds + 3600.0) + 120.0
        )
        self.spacing = min(thresholds.rate_window_seconds, thresholds.traffic_window_seconds) / 10
        # What happens from now on counts: the metrics as they are now start the history.
        self.history: deque[tuple[float, MetricSnapshot]] = deque()
        self._remember(self.clock(), self._scrape())

    def _scrape(self) -> MetricSnapshot:
        return MetricSnapshot.from_exposition(self.metrics.render().decode())

    def _remember(self, now: float, snapshot: MetricSnapshot) -> None:
        kept = MetricSnapshot({k: v for k, v in snapshot.items() if k[0] in HISTORY_SERIES})
        if not self.history or now - self.history[-1][0] >= self.spacing:
            self.history.append((now, kept))
        while len(self.history) > 2 and now - self.history[1][0] >= self.keep_seconds:
            self.history.popleft()

    def _window_start(self, now: float) -> MetricSnapshot | None:
        found = MetricHistory(self.history).at(now - self.config.thresholds.rate_window_seconds)
        if found is None:  # younger than the window: since the oldest snapshot there is
            found = self.history[0] if self.history and self.history[0][0] < now else None
        return None if found is None else found[1]

    def load(self) -> tuple[RuleEngine, AlertManager]:
        """The rule engine and the manager, as the store holds them (fresh ones if it holds
        nothing readable; an engine without state takes the manager's episodes as firing)."""
        with self.store.sessions() as session:
            state = queries.get_state(self.state_key, session=session)
            engine_state = queries.get_state(self.engine_key, session=session)
        manager = self.config.manager()
        if state:
            try:
                manager = AlertManager.from_dict(
                    state,
                    group_by=self.config.group_by,
                    group_wait=self.config.group_wait,
                    repeat_interval=self.config.repeat_interval,
                )
            except Exception as exc:  # a state from an older format: start afresh
                log.warning("alert manager state unreadable (%s); starting afresh", exc)
        engine = RuleEngine(self.rules)
        if engine_state:
            try:
                engine = RuleEngine.from_dict(engine_state, self.rules)
            except Exception as exc:
                log.warning("alert rule state unreadable (%s); starting afresh", exc)
        # Alerts the manager tracks stay firing until their rules judge them clear (the
        # engine's state is written with the manager's, so this only matters without it).
        engine.seed_firing([(e.alert, e.starts_at) for e in manager.active()])
        return engine, manager

    def run(self, now: float | None = None) -> list[Notification]:
        """Evaluate the rules now; record, notify, and return the notifications sent."""
        now = self.clock() if now is None else now
        snapshot = self._scrape()
        previous = self._window_start(now)
        history = MetricHistory(self.history)
        engine, manager = self.load()
        alerts = engine.evaluate(snapshot, now=now, previous=previous, history=history)
        self._remember(now, snapshot)
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
            queries.put_state(self.engine_key, engine.to_dict(), session=session)
        for notification in notifications:
            self._deliver(notification)
        self.metrics.forget(self.metrics.alerts_firing, 0.0)
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
