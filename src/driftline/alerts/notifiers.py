"""Notifiers: where notifications go, how they are retried, and who gets which.

Long on purpose (600+ lines): four receivers' formats with the retry and routing they share.

Every notifier has a ``name`` and ``send(notification) -> None``, raising
:class:`DeliveryError` on failure; the error says whether trying again can help
(connection errors, timeouts, HTTP 5xx and 429, SMTP 4xx) and how long the receiver asked to
wait (``Retry-After``). :func:`deliver` retries with exponential backoff and jitter;
:class:`Router` picks the notifiers of a notification by severity and labels;
:func:`dispatch` does both for one notification and reports per notifier, never raising.

* :class:`WebhookNotifier` -- a generic JSON document (see :meth:`WebhookNotifier.payload`).
* :class:`SlackNotifier` -- Slack's incoming-webhook format: text plus an attachment colored by
  severity holding Block Kit blocks.
* :class:`PagerDutyNotifier` -- PagerDuty Events API v2: one ``trigger`` per alert (or per
  group) and a ``resolve`` with the same ``dedup_key`` when it stops.
* :class:`EmailNotifier` -- SMTP through the standard library, optional STARTTLS and login,
  a plain-text and an HTML part.

HTTP goes through httpx (sync, one short-lived client per send: notifications are rare).

Why not apprise (evaluated at 2.3.0, for issue 12; it covers ~100 services): it keeps none of
the three things the tests hold these notifiers to. PagerDuty resolves by a dedup key fixed per
configured URL (``?action=resolve&dedup=``), not per alert or group, so every episode would
need its own URL object; its endpoint is not configurable, so no test can aim it at a local
receiver. Retries are a fixed ``wait`` (at most 10, at most 20 s apart) with no exponential
backoff, no jitter and no ``Retry-After``; a 4xx is retried like a 5xx. And at DEBUG its
PagerDuty plugin logs the whole payload, integration key included, and its Slack plugin the
webhook URL, token included, where ours keep secrets out of logs and reprs. Adopt it when a
receiver we lack is asked for, behind the ``Notifier`` protocol, not as the transport of these
four.
"""

from __future__ import annotations

import hashlib
import html
import math
import random
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

import httpx

from driftline.alerts.model import AlertEvent, Notification, Severity
from driftline.errors import ConfigurationError, DriftlineError

__all__ = [
    "PAGERDUTY_EVENTS_URL",
    "DeliveryError",
    "DeliveryResult",
    "EmailNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "RetryPolicy",
    "Route",
    "Router",
    "SlackNotifier",
    "WebhookNotifier",
    "deliver",
    "dispatch",
]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
WEBHOOK_VERSION = "1"
SLACK_COLORS = {"critical": "#d92d20", "warning": "#f79009", "resolved": "#12b76a"}
SLACK_MAX_ALERTS = 10  # sections per message; the rest are counted
SEVERITIES = ("warning", "critical")


class DeliveryError(DriftlineError):
    """A notification that did not arrive.

    ``retryable`` says whether trying again can help; ``retry_after`` is the wait the receiver
    asked for (seconds), ``status`` the HTTP or SMTP code when there was one, ``attempts`` how
    many sends were made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.attempts = 1


@runtime_checkable
class Notifier(Protocol):
    """Anything that can send a notification; raises :class:`DeliveryError` on failure."""

    name: str

    def send(self, notification: Notification) -> None: ...


# --- shared helpers ---------------------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number, or an HTTP date.

    >>> _retry_after("3"), _retry_after(None), _retry_after("soon")
    (3.0, None, None)
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigurationError(f"{name} must be in (0, inf), got {value!r}")


def _check_url(name: str, url: str) -> None:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"{name} must be an http:// or https:// URL, got {url!r}")


def _alert_details(event: AlertEvent) -> dict[str, Any]:
    alert = event.alert
    value = alert.value
    return {
        "status": event.status,
        "labels": alert.all_labels,
        "annotations": {"summary": alert.summary, "description": alert.description},
        "startsAt": _iso(event.starts_at),
        "endsAt": _iso(event.ends_at),
        "fingerprint": alert.fingerprint,
        "value": value if value is not None and math.isfinite(value) else None,
    }


class _HttpNotifier:
    name: str
    url: str
    timeout: float
    headers: dict[str, str]

    def _post(self, payload: Mapping[str, Any]) -> None:
        try:
            with httpx.Client(timeout=self.timeout) as client:
                response = client.post(self.url, json=payload, headers=self.headers)
        except httpx.TransportError as exc:
            raise DeliveryError(
                f"{self.name}: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        body = response.text[:200].strip()
        retryable = status == 429 or status >= 500
        raise DeliveryError(
            f"{self.name}: HTTP {status} {body}".rstrip(),
            retryable=retryable,
            retry_after=_retry_after(response.headers.get("retry-after")) if retryable else None,
            status=status,
        )


# --- generic webhook ------------------------------------------------------------------------


class WebhookNotifier(_HttpNotifier):
    """POST a JSON document describing the notification to ``url``.

    Parameters
    ----------
    url
        Where to POST (http or https).
    name
        How routes and results refer to this notifier (default ``"webhook"``).
    timeout
        Seconds for the whole request (default 10), in (0, inf).
    headers
        Extra headers, e.g. ``{"Authorization": "Bearer ..."}``.

    Example
    -------
    >>> from driftline.alerts.model import Alert
    >>> a = Alert("DriftlineNoChampion", "critical", {}, "No champion", value=0.0)
    >>> n = Notification("firing", 'alertname="DriftlineNoChampion"',
    ...                  {"alertname": "DriftlineNoChampion"},
    ...                  (AlertEvent(a, "firing", 0.0),), created=60.0, group_firing=1)
    >>> doc = WebhookNotifier("http://127.0.0.1:9/hook").payload(n)
    >>> doc["status"], doc["kind"], doc["alerts"][0]["startsAt"], doc["alerts"][0]["endsAt"]
    ('firing', 'firing', '1970-01-01T00:00:00Z', None)
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        _check_url("url", url)
        _check_positive("timeout", timeout)
        self.url = url
        self.name = name
        self.timeout = float(timeout)
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r})"  # the URL may carry a secret

    def payload(self, notification: Notification) -> dict[str, Any]:
        """The JSON document: ``version``, ``status`` (firing|resolved), ``kind``
        (firing|repeat|resolved), ``groupKey``, ``groupLabels``, ``commonLabels``,
        ``groupFiring``, ``created`` and ``alerts`` (each with ``status``, ``labels``,
        ``annotations`` {summary, description}, ``startsAt``, ``endsAt``, ``fingerprint``,
        ``value``; times in ISO 8601 UTC)."""
        return {
            "version": WEBHOOK_VERSION,
            "status": notification.status,
            "kind": notification.kind,
            "groupKey": notification.group_key,
            "groupLabels": dict(notification.group_labels),
            "commonLabels": notification.common_labels,
            "groupFiring": notification.group_firing,
            "created": _iso(notification.created),
            "title": notification.title,
            "alerts": [_alert_details(e) for e in notification.alerts],
        }

    def send(self, notification: Notification) -> None:
        self._post(self.payload(notification))


# --- Slack ------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackNotifier(_HttpNotifier):
    """Post to a Slack incoming webhook: a ``text`` headline and one attachment, colored by
    severity (green when resolved), holding a section per alert (at most ten, then a count).

    Parameters
    ----------
    url
        The incoming-webhook URL (a secret: keep it out of logs).
    name, timeout
        As for :class:`WebhookNotifier` (default name ``"slack"``).
    """

    def __init__(self, url: str, *, name: str = "slack", timeout: float = 10.0) -> None:
        _check_url("url", url)
        _check_positive("timeout", timeout)
        self.url = url
        self.name = name
        self.timeout = float(timeout)
        self.headers = {}

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r})"

    def payload(self, notification: Notification) -> dict[str, Any]:
        title = notification.title
        resolved = notification.kind == "resolved"
        color = SLACK_COLORS["resolved" if resolved else notification.severity]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(title)}*"}}
        ]
        for event in notification.alerts[:SLACK_MAX_ALERTS]:
            alert = event.alert
            lines = [f"*{_slack_escape(alert.summary)}*"]
            if alert.description:
                lines.append(_slack_escape(alert.description))
            facts = [f"`{k}={v}`" for k, v in sorted(alert.labels.items())]
            facts.append(f"severity {alert.severity}")
            if alert.value is not None:
                facts.append(f"value {alert.value:.4g}")
            since = _iso(event.starts_at)
            facts.append(f"since {since}" if not resolved else f"ended {_iso(event.ends_at)}")
            lines.append(" · ".join(_slack_escape(f) for f in facts))
            text = "\n".join(lines)[:2900]
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        hidden = len(notification.alerts) - SLACK_MAX_ALERTS
        context = f"driftline · {_slack_escape(notification.group_key)}"
        if hidden > 0:
            context += f" · and {hidden} more"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        return {
            "text": title,
            "attachments": [{"color": color, "fallback": title, "blocks": blocks}],
        }

    def send(self, notification: Notification) -> None:
        self._post(self.payload(notification))


# --- PagerDuty --------------------------------------------------------------------------------


class PagerDutyNotifier(_HttpNotifier):
    """Send PagerDuty Events API v2 events.

    Parameters
    ----------
    routing_key
        The integration key of the PagerDuty service (a secret).
    url
        The events endpoint (default :data:`PAGERDUTY_EVENTS_URL`).
    dedup_by
        ``"alert"`` (default): one incident per alert, ``dedup_key`` = its fingerprint;
        ``"group"``: one incident per group, ``dedup_key`` = the group key (hashed past 255
        characters), resolved once no alert of the group fires.
    source
        ``payload.source`` (default ``"driftline"``).
    name, timeout
        As for :class:`WebhookNotifier` (default name ``"pagerduty"``).

    Repeats send ``trigger`` again with the same ``dedup_key``: PagerDuty folds it into the open
    incident, so a retried or repeated notification never opens a second one.

    Example
    -------
    >>> from driftline.alerts.model import Alert
    >>> a = Alert("DriftlineHighErrorRate", "critical", {}, "12% of requests failed", value=0.12)
    >>> n = Notification("resolved", 'alertname="DriftlineHighErrorRate"', {},
    ...                  (AlertEvent(a, "resolved", 0.0, 60.0),), created=60.0)
    >>> PagerDutyNotifier("key").events(n)
    [{'routing_key': 'key', 'event_action': 'resolve', 'dedup_key': '204ee5ef1e24030a'}]
    """

    def __init__(
        self,
        routing_key: str,
        *,
        url: str = PAGERDUTY_EVENTS_URL,
        dedup_by: str = "alert",
        source: str = "driftline",
        name: str = "pagerduty",
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(routing_key, str) or not routing_key:
            raise ConfigurationError("routing_key must be a non-empty string, got an empty one")
        if dedup_by not in ("alert", "group"):
            raise ConfigurationError(
                f"dedup_by must be one of ('alert', 'group'), got {dedup_by!r}"
            )
        _check_url("url", url)
        _check_positive("timeout", timeout)
        self.routing_key = routing_key
        self.url = url
        self.dedup_by = dedup_by
        self.source = source
        self.name = name
        self.timeout = float(timeout)
        self.headers = {}

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(name={self.name!r}, url={self.url!r})"

    @staticmethod
    def _group_dedup_key(group_key: str) -> str:
        if len(group_key) <= 255:
            return group_key
        return "driftline:" + hashlib.sha256(group_key.encode()).hexdigest()

    def _trigger(self, dedup_key: str, summary: str, severity: Severity, details: Any) -> Any:
        return {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "client": "driftline",
            "payload": {
                "summary": summary[:1024],
                "severity": severity,
                "source": self.source,
                "custom_details": details,
            },
        }

    def _resolve(self, dedup_key: str) -> dict[str, Any]:
        return {"routing_key": self.routing_key, "event_action": "resolve", "dedup_key": dedup_key}

    def events(self, notification: Notification) -> list[dict[str, Any]]:
        """The events one notification becomes, in sending order."""
        resolved = notification.kind == "resolved"
        if self.dedup_by == "group":
            key = self._group_dedup_key(notification.group_key)
            if resolved:
                return [self._resolve(key)] if notification.group_firing == 0 else []
            summary = notification.title
            if len(notification.alerts) == 1:
                summary = notification.alerts[0].alert.summary
            details = {
                "group": notification.group_key,
                "alerts": [_alert_details(e) for e in notification.alerts],
            }
            return [self._trigger(key, summary, notification.severity, details)]
        out = []
        for event in notification.alerts:
            alert = event.alert
            if resolved:
                out.append(self._resolve(alert.fingerprint))
            else:
                details = _alert_details(event)
                out.append(self._trigger(alert.fingerprint, alert.summary, alert.severity, details))
        return out

    def send(self, notification: Notification) -> None:
        for event in self.events(notification):
            self._post(event)


# --- email ------------------------------------------------------------------------------------


class EmailNotifier:
    """Send an email through an SMTP server, with a plain-text and an HTML part.

    Parameters
    ----------
    host, port
        The SMTP server (default port 25; 587 is usual with STARTTLS).
    sender
        The ``From`` address.
    recipients
        The ``To`` addresses (at least one).
    starttls
        Upgrade the connection with STARTTLS before anything else (default False).
    username, password
        Log in (after STARTTLS when enabled) when a username is given.
    ca_file
        A PEM bundle to verify the server's certificate with, instead of the system's.
    timeout
        Seconds for the connection and each command (default 10), in (0, inf).
    subject_prefix
        Put before the subject (default ``"[driftline]"``).
    name
        How routes and results refer to this notifier (default ``"email"``).
    """

    def __init__(
        self,
        *,
        host: str,
        sender: str,
        recipients: Sequence[str],
        port: int = 25,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        subject_prefix: str = "[driftline]",
        name: str = "email",
    ) -> None:
        if not host:
            raise ConfigurationError(f"host must be a non-empty string, got {host!r}")
        if not (isinstance(port, int) and 0 < port < 65536):
            raise ConfigurationError(f"port must be in [1, 65535], got {port!r}")
        if "@" not in sender:
            raise ConfigurationError(f"sender must be an email address, got {sender!r}")
        if isinstance(recipients, str) or not recipients:
            raise ConfigurationError(
                f"recipients must be a non-empty list of addresses, got {recipients!r}"
            )
        bad = [r for r in recipients if "@" not in r]
        if bad:
            raise ConfigurationError(f"recipients must be email addresses, got {bad!r}")
        if password is not None and username is None:
            raise ConfigurationError("password needs a username, got a password alone")
        _check_positive("timeout", timeout)
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        self.starttls = starttls
        self.username = username
        self.password = password
        self.ca_file = ca_file
        self.timeout = float(timeout)
        self.subject_prefix = subject_prefix
        self.name = name

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r}, host={self.host!r}, port={self.port!r})"

    def message(self, notification: Notification) -> EmailMessage:
        """The email of a notification (``Subject`` is the prefix and the title)."""
        msg = EmailMessage()
        msg["Subject"] = f"{self.subject_prefix} {notification.title}".strip()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(notification.created, usegmt=True)
        msg["Message-ID"] = make_msgid(domain="driftline.local")
        resolved = notification.kind == "resolved"

        text = [notification.title, f"group: {notification.group_key}", ""]
        rows = []
        for event in notification.alerts:
            alert = event.alert
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            when = f"ended {_iso(event.ends_at)}" if resolved else f"since {_iso(event.starts_at)}"
            value = "" if alert.value is None else f"{alert.value:.4g}"
            text += [
                f"* {alert.summary}",
                f"  {alert.name} ({alert.severity}) {labels}".rstrip(),
                f"  value {value}, {when}" if value else f"  {when}",
            ]
            if alert.description:
                text.append(f"  {alert.description}")
            text.append("")
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(cell)}</td>"
                    for cell in (alert.severity, alert.name, labels, alert.summary, value, when)
                )
                + "</tr>"
            )
        msg.set_content("\n".join(text))
        color = SLACK_COLORS["resolved" if resolved else notification.severity]
        msg.add_alternative(
            "<html><body>"
            f'<h2 style="color:{color}">{html.escape(notification.title)}</h2>'
            f"<p>group: <code>{html.escape(notification.group_key)}</code></p>"
            '<table border="1" cellpadding="4" cellspacing="0">'
            "<tr><th>severity</th><th>alert</th><th>labels</th><th>summary</th>"
            "<th>value</th><th>when</th></tr>" + "".join(rows) + "</table></body></html>",
            subtype="html",
        )
        return msg

    def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    context = ssl.create_default_context(cafile=self.ca_file)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"{self.name}: recipients refused {exc.recipients}",
                retryable=all(400 <= c < 500 for c in codes),
                status=max(codes) if codes else None,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            reason = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryError(
                f"{self.name}: SMTP {exc.smtp_code} {reason}",
                retryable=400 <= exc.smtp_code < 500,
                status=exc.smtp_code,
            ) from exc
        except (smtplib.SMTPNotSupportedError, ssl.SSLError) as exc:
            raise DeliveryError(
                f"{self.name}: {type(exc).__name__}: {exc}", retryable=False
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"{self.name}: {type(exc).__name__}: {exc}", retryable=True
            ) from exc


# --- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How :func:`deliver` retries.

    Parameters
    ----------
    retries
        Attempts after the first (default 3), in [0, 100].
    backoff
        Base delay in seconds (default 0.5), in [0, inf): attempt ``k`` waits between half and
        all of ``min(max_backoff, backoff * 2**(k-1))`` (exponential backoff, "equal" jitter).
    max_backoff
        Cap of one delay (default 8 s), in [backoff, inf).
    max_retry_after
        The longest ``Retry-After`` honoured (default 60 s), in [0, inf); a receiver asking for
        a longer wait fails the delivery instead of blocking the monitor.

    Example
    -------
    >>> p = RetryPolicy(backoff=1.0, max_backoff=4.0)
    >>> [round(p.delay(k, random.Random(0)), 2) for k in (1, 2, 3, 4)]
    [0.92, 1.84, 3.69, 3.69]
    >>> RetryPolicy(max_backoff=0.1)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: max_backoff must be in [0.5, inf), got 0.1
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if not (isinstance(self.retries, int) and 0 <= self.retries <= 100):
            raise ConfigurationError(f"retries must be in [0, 100], got {self.retries!r}")
        for name, value, low in (
            ("backoff", self.backoff, 0.0),
            ("max_backoff", self.max_backoff, self.backoff),
            ("max_retry_after", self.max_retry_after, 0.0),
        ):
            if not (value >= low and math.isfinite(value)):
                raise ConfigurationError(f"{name} must be in [{low}, inf), got {value!r}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


def deliver(
    notifier: Notifier,
    notification: Notification,
    *,
    retries: int = 3,
    backoff: float = 0.5,
    max_backoff: float = 8.0,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> int:
    """Send with retries; return the number of attempts it took.

    Retries a :class:`DeliveryError` marked retryable (connection errors, timeouts, 5xx, 429,
    SMTP 4xx), waiting as :class:`RetryPolicy` says, or the receiver's ``Retry-After`` when
    longer. Raises the last :class:`DeliveryError` (its ``attempts`` set) when retrying
    cannot help or the retries are spent; other exceptions propagate at once.
    """
    policy = RetryPolicy(
        retries=retries, backoff=backoff, max_backoff=max_backoff, max_retry_after=max_retry_after
    )
    rng = rng or random.Random()
    attempt = 0
    while True:
        attempt += 1
        try:
            notifier.send(notification)
            return attempt
        except DeliveryError as exc:
            exc.attempts = attempt
            if not exc.retryable or attempt > policy.retries:
                raise
            wait = policy.delay(attempt, rng)
            if exc.retry_after is not None:
                if exc.retry_after > policy.max_retry_after:
                    raise
                wait = max(wait, exc.retry_after)
            sleep(wait)


# --- routing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Send matching notifications to ``notifiers``.

    Parameters
    ----------
    notifiers
        Names of the notifiers (at least one).
    severity
        Match only notifications of this severity (their highest alert severity); ``None``
        matches any.
    match
        Labels every alert of the notification must carry with these values (``alertname``
        and ``severity`` included), e.g. ``{"alertname": "DriftlineNoChampion"}``.
    stop
        When this route matches, ignore the routes after it (default False: every matching
        route adds its notifiers).
    """

    notifiers: tuple[str, ...]
    severity: Severity | None = None
    match: Mapping[str, str] = field(default_factory=dict)
    stop: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.notifiers, str) or not self.notifiers:
            raise ConfigurationError(
                f"notifiers must be a non-empty list of names, got {self.notifiers!r}"
            )
        object.__setattr__(self, "notifiers", tuple(self.notifiers))
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ConfigurationError(
                f"severity must be one of {SEVERITIES} or None, got {self.severity!r}"
            )
        object.__setattr__(self, "match", dict(self.match))

    def matches(self, notification: Notification) -> bool:
        if self.severity is not None and notification.severity != self.severity:
            return False
        common = notification.common_labels
        return all(common.get(k) == v for k, v in self.match.items())


class Router:
    """Which notifiers get a notification: the union, in order, of every matching route's
    notifiers (up to a matching route with ``stop``), or ``default`` when none matches.

    Example
    -------
    >>> from driftline.alerts.model import Alert
    >>> router = Router([Route(("pagerduty", "slack"), severity="critical"),
    ...                  Route(("slack",), severity="warning")], default=("email",))
    >>> def note(severity):
    ...     a = Alert("X", severity, {}, "x")
    ...     return Notification("firing", "k", {}, (AlertEvent(a, "firing", 0.0),), 0.0)
    >>> router.route(note("critical")), router.route(note("warning"))
    (('pagerduty', 'slack'), ('slack',))
    """

    def __init__(self, routes: Sequence[Route], *, default: Sequence[str] = ()) -> None:
        self.routes = tuple(routes)
        self.default = tuple(default)

    def __repr__(self) -> str:
        return f"Router({list(self.routes)!r}, default={self.default!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Router):
            return NotImplemented
        return (self.routes, self.default) == (other.routes, other.default)

    __hash__ = None  # type: ignore[assignment]

    def names(self) -> set[str]:
        """Every notifier name a route or the default refers to."""
        return {n for r in self.routes for n in r.notifiers} | set(self.default)

    def route(self, notification: Notification) -> tuple[str, ...]:
        chosen: list[str] = []
        matched = False
        for route in self.routes:
            if route.matches(notification):
                matched = True
                chosen += [n for n in route.notifiers if n not in chosen]
                if route.stop:
                    break
        return tuple(chosen) if matched else self.default


@dataclass(frozen=True)
class DeliveryResult:
    """How sending one notification to one notifier went."""

    notifier: str
    ok: bool
    attempts: int
    error: str | None = None


def dispatch(
    notification: Notification,
    *,
    router: Router,
    notifiers: Mapping[str, Notifier],
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> list[DeliveryResult]:
    """Deliver a notification to every notifier the router picks, one after the other. Never
    raises: a notifier that fails (or does not exist) is reported in its result, and the others
    still get the notification."""
    policy = policy or RetryPolicy()
    results = []
    for name in router.route(notification):
        notifier = notifiers.get(name)
        if notifier is None:
            results.append(DeliveryResult(name, False, 0, f"no notifier named {name!r}"))
            continue
        try:
            attempts = deliver(
                notifier,
                notification,
                retries=policy.retries,
                backoff=policy.backoff,
                max_backoff=policy.max_backoff,
                max_retry_after=policy.max_retry_after,
                sleep=sleep,
                rng=rng,
            )
        except DeliveryError as exc:
            results.append(DeliveryResult(name, False, exc.attempts, str(exc)))
        except Exception as exc:  # a broken notifier must not silence the others
            results.append(DeliveryResult(name, False, 1, f"{type(exc).__name__}: {exc}"))
        else:
            results.append(DeliveryResult(name, True, attempts))
    return results
