"""Built-in alerting, for the embedded default where no Prometheus runs.

After every monitor run the service's metrics are read into a :class:`MetricSnapshot`, the
built-in rules (the alerts of ``deploy/prometheus/alerts.yml``) judge it, the
:class:`RuleEngine` applies their ``for`` and ``keep_firing_for`` durations and hysteresis
and yields the firing :class:`Alert` values, the :class:`AlertManager` deduplicates, groups
and resolves them into :class:`Notification` values, and :func:`dispatch` sends those to the
notifiers the :class:`Router` picks, retrying with backoff. The rules, the engine and the
manager are pure; notifiers do the I/O. :func:`load_alerts_config` reads notifiers, routes,
thresholds and rule durations from a YAML or JSON file.
"""

from __future__ import annotations

from driftline.alerts.config import (
    AlertsConfig,
    load_alerts_config,
    parse_alerts_config,
    parse_duration,
)
from driftline.alerts.engine import RuleEngine
from driftline.alerts.manager import AlertManager
from driftline.alerts.model import (
    Alert,
    AlertEvent,
    Evaluation,
    MetricHistory,
    MetricSnapshot,
    Notification,
    NotificationKind,
    RuleSpec,
    Severity,
    fingerprint,
)
from driftline.alerts.notifiers import (
    PAGERDUTY_EVENTS_URL,
    DeliveryError,
    DeliveryResult,
    EmailNotifier,
    Notifier,
    PagerDutyNotifier,
    RetryPolicy,
    Route,
    Router,
    SlackNotifier,
    WebhookNotifier,
    deliver,
    dispatch,
)
from driftline.alerts.rules import (
    ALERT_NAMES,
    DEFAULT_DURATIONS,
    AlertThresholds,
    builtin_rules,
    evaluate_rules,
)

__all__ = [
    "ALERT_NAMES",
    "DEFAULT_DURATIONS",
    "PAGERDUTY_EVENTS_URL",
    "Alert",
    "AlertEvent",
    "AlertManager",
    "AlertThresholds",
    "AlertsConfig",
    "DeliveryError",
    "DeliveryResult",
    "EmailNotifier",
    "Evaluation",
    "MetricHistory",
    "MetricSnapshot",
    "Notification",
    "NotificationKind",
    "Notifier",
    "PagerDutyNotifier",
    "RetryPolicy",
    "Route",
    "Router",
    "RuleEngine",
    "RuleSpec",
    "Severity",
    "SlackNotifier",
    "WebhookNotifier",
    "builtin_rules",
    "deliver",
    "dispatch",
    "evaluate_rules",
    "fingerprint",
    "load_alerts_config",
    "parse_alerts_config",
    "parse_duration",
]
