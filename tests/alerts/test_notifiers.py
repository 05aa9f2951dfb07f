"""Notifiers against real receivers on 127.0.0.1: an HTTP server and an aiosmtpd SMTP server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline.alerts import (
    Alert,
    AlertEvent,
    DeliveryError,
    EmailNotifier,
    Notification,
    Notifier,
    PagerDutyNotifier,
    Route,
    Router,
    SlackNotifier,
    WebhookNotifier,
    deliver,
    dispatch,
)
from driftline.alerts.notifiers import RetryPolicy
from driftline.errors import ConfigurationError
from tests.alerts.receivers import (
    HttpReceiver,
    free_port,
    http_receiver,
    self_signed_tls,
    smtp_server,
)

T0 = 1_700_000_000.0


def drift(feature: str, severity: str = "critical") -> Alert:
    name = (
        "DriftlineFeatureDriftCritical"
        if severity == "critical"
        else "DriftlineFeatureDriftWarning"
    )
    return Alert(
        name,
        severity,  # type: ignore[arg-type]
        {"feature": feature},
        f"Feature {feature} drifted <badly> & fast",
        "Compare the distributions.",
        value=2.0,
    )


def firing(*alerts: Alert, kind: str = "firing") -> Notification:
    return Notification(
        kind,  # type: ignore[arg-type]
        f'alertname="{alerts[0].name}"',
        {"alertname": alerts[0].name},
        tuple(AlertEvent(a, "firing", T0) for a in alerts),
        created=T0 + 5,
        group_firing=len(alerts),
    )


def resolved(*alerts: Alert, group_firing: int = 0) -> Notification:
    return Notification(
        "resolved",
        f'alertname="{alerts[0].name}"',
        {"alertname": alerts[0].name},
        tuple(AlertEvent(a, "resolved", T0, T0 + 600) for a in alerts),
        created=T0 + 600,
        group_firing=group_firing,
    )


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# --- generic webhook --------------------------------------------------------------------------


def test_webhook_posts_the_documented_json(receiver: HttpReceiver) -> None:
    hook = WebhookNotifier(
        receiver.url + "/hook", headers={"Authorization": "Bearer t0ken"}, timeout=5
    )
    hook.send(firing(drift("age"), drift("income")))
    (req,) = receiver.requests
    assert req.path == "/hook"
    assert req.headers["authorization"] == "Bearer t0ken"
    assert req.headers["content-type"] == "application/json"
    doc = req.json()
    assert doc["version"] == "1"
    assert doc["status"] == "firing"
    assert doc["kind"] == "firing"
    assert doc["groupKey"] == 'alertname="DriftlineFeatureDriftCritical"'
    assert doc["groupLabels"] == {"alertname": "DriftlineFeatureDriftCritical"}
    assert doc["commonLabels"] == {
        "alertname": "DriftlineFeatureDriftCritical",
        "severity": "critical",
    }
    assert doc["groupFiring"] == 2
    first = doc["alerts"][0]
    assert first["status"] == "firing"
    assert first["labels"] == {
        "alertname": "DriftlineFeatureDriftCritical",
        "severity": "critical",
        "feature": "age",
    }
    assert first["annotations"] == {
        "summary": "Feature age drifted <badly> & fast",
        "description": "Compare the distributions.",
    }
    assert first["startsAt"] == "2023-11-14T22:13:20Z"
    assert first["endsAt"] is None
    assert first["fingerprint"] == drift("age").fingerprint
    assert first["value"] == 2.0


def test_webhook_resolve_carries_the_end(receiver: HttpReceiver) -> None:
    WebhookNotifier(receiver.url).send(resolved(drift("age")))
    doc = receiver.requests[0].json()
    assert doc["status"] == "resolved"
    assert doc["alerts"][0]["status"] == "resolved"
    assert doc["alerts"][0]["endsAt"] == "2023-11-14T22:23:20Z"


# --- retries ----------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff(receiver: HttpReceiver) -> None:
    receiver.answer((500, {}), (502, {}))
    sleeps = Sleeps()
    attempts = deliver(
        WebhookNotifier(receiver.url),
        firing(drift("age")),
        backoff=0.5,
        max_backoff=8,
        sleep=sleeps,
        rng=random.Random(1),
    )
    assert attempts == 3
    assert len(receiver.requests) == 3
    # exponential with jitter: attempt k waits within [ceiling/2, ceiling], ceiling 0.5 * 2^(k-1)
    assert 0.25 <= sleeps.calls[0] <= 0.5
    assert 0.5 <= sleeps.calls[1] <= 1.0


def test_429_honours_retry_after(receiver: HttpReceiver) -> None:
    receiver.answer((429, {"Retry-After": "3"}))
    sleeps = Sleeps()
    attempts = deliver(SlackNotifier(receiver.url), firing(drift("age")), sleep=sleeps)
    assert attempts == 2
    assert sleeps.calls == [3.0]


def test_retry_after_beyond_the_limit_fails_instead_of_blocking(receiver: HttpReceiver) -> None:
    receiver.answer((503, {"Retry-After": "600"}))
    sleeps = Sleeps()
    with pytest.raises(DeliveryError) as info:
        deliver(WebhookNotifier(receiver.url), firing(drift("age")), sleep=sleeps)
    assert info.value.retry_after == 600.0
    assert info.value.attempts == 1
    assert sleeps.calls == []


def test_4xx_is_not_retried(receiver: HttpReceiver) -> None:
    receiver.answer((400, {}))
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match="HTTP 400") as info:
        deliver(PagerDutyNotifier("key", url=receiver.url), firing(drift("age")), sleep=sleeps)
    assert not info.value.retryable
    assert info.value.status == 400
    assert info.value.attempts == 1
    assert len(receiver.requests) == 1
    assert sleeps.calls == []


def test_retries_run_out(receiver: HttpReceiver) -> None:
    receiver.answer(*[(503, {})] * 5)
    with pytest.raises(DeliveryError) as info:
        deliver(WebhookNotifier(receiver.url), firing(drift("age")), retries=2, sleep=Sleeps())
    assert info.value.attempts == 3
    assert len(receiver.requests) == 3


def test_connection_errors_are_retried_and_really_wait() -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    with pytest.raises(DeliveryError) as info:
        deliver(WebhookNotifier(dead, timeout=2), firing(drift("age")), retries=2, backoff=0.01)
    assert info.value.retryable
    assert info.value.attempts == 3
    assert "ConnectError" in str(info.value)


def test_retry_policy_validates() -> None:
    with pytest.raises(ConfigurationError, match=r"retries must be in \[0, 100\], got -1"):
        RetryPolicy(retries=-1)
    with pytest.raises(ConfigurationError, match="backoff must be in"):
        deliver(WebhookNotifier("http://127.0.0.1:9"), firing(drift("a")), backoff=-1)


# --- Slack ------------------------------------------------------------------------------------


def test_slack_incoming_webhook_format(receiver: HttpReceiver) -> None:
    slack = SlackNotifier(receiver.url + "/services/T/B/X")
    slack.send(firing(drift("age")))
    slack.send(firing(*(drift(f"f{i}", "warning") for i in range(12))))
    slack.send(resolved(drift("age")))
    critical, warning, clear = (r.json() for r in receiver.requests)

    assert critical["text"] == "[FIRING:1] DriftlineFeatureDriftCritical"
    (attachment,) = critical["attachments"]
    assert attachment["color"] == "#d92d20"
    blocks = attachment["blocks"]
    assert blocks[0]["text"]["type"] == "mrkdwn"
    alert_text = blocks[1]["text"]["text"]
    assert "Feature age drifted &lt;badly&gt; &amp; fast" in alert_text  # Slack escaping
    assert "`feature=age`" in alert_text
    assert blocks[-1]["type"] == "context"

    assert warning["attachments"][0]["color"] == "#f79009"
    assert len(warning["attachments"][0]["blocks"]) == 1 + 10 + 1
    assert "and 2 more" in warning["attachments"][0]["blocks"][-1]["elements"][0]["text"]

    assert clear["text"].startswith("[RESOLVED:1]")
    assert clear["attachments"][0]["color"] == "#12b76a"


# --- PagerDuty --------------------------------------------------------------------------------


def test_pagerduty_events_v2_per_alert(receiver: HttpReceiver) -> None:
    pd = PagerDutyNotifier("R0UT1NG", url=receiver.url + "/v2/enqueue", source="prod-api")
    pd.send(firing(drift("age"), drift("income")))
    pd.send(resolved(drift("age")))
    assert [r.path for r in receiver.requests] == ["/v2/enqueue"] * 3
    trigger, _, resolve = (r.json() for r in receiver.requests)
    assert trigger["routing_key"] == "R0UT1NG"
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == drift("age").fingerprint
    payload = trigger["payload"]
    assert payload["summary"] == "Feature age drifted <badly> & fast"
    assert payload["severity"] == "critical"
    assert payload["source"] == "prod-api"
    assert payload["custom_details"]["labels"]["feature"] == "age"
    assert resolve == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": drift("age").fingerprint,
    }


def test_pagerduty_group_dedup_resolves_only_a_cleared_group(receiver: HttpReceiver) -> None:
    pd = PagerDutyNotifier("k", url=receiver.url, dedup_by="group")
    pd.send(firing(drift("age"), drift("income")))
    pd.send(resolved(drift("age"), group_firing=1))  # income still fires: nothing to send
    pd.send(resolved(drift("income"), group_firing=0))
    trigger, resolve = (r.json() for r in receiver.requests)
    assert (
        trigger["dedup_key"] == resolve["dedup_key"] == 'alertname="DriftlineFeatureDriftCritical"'
    )
    assert trigger["payload"]["summary"] == "[FIRING:2] DriftlineFeatureDriftCritical"
    assert len(trigger["payload"]["custom_details"]["alerts"]) == 2
    assert resolve["event_action"] == "resolve"


def test_pagerduty_defaults_and_validation() -> None:
    assert PagerDutyNotifier("k").url == "https://events.pagerduty.com/v2/enqueue"
    with pytest.raises(ConfigurationError, match="dedup_by must be one of"):
        PagerDutyNotifier("k", dedup_by="incident")
    with pytest.raises(ConfigurationError, match="routing_key must be a non-empty string"):
        PagerDutyNotifier("")
    assert "k" not in repr(PagerDutyNotifier("k"))  # secrets stay out of reprs


# --- email ------------------------------------------------------------------------------------


def test_email_plain_and_html_parts() -> None:
    with smtp_server() as smtp:
        EmailNotifier(
            host="127.0.0.1",
            port=smtp.port,
            sender="driftline@example.com",
            recipients=["ml@example.com", "oncall@example.com"],
            timeout=5,
        ).send(firing(drift("age")))
        (envelope,) = smtp.inbox.envelopes
        assert envelope.mail_from == "driftline@example.com"
        assert envelope.rcpt_tos == ["ml@example.com", "oncall@example.com"]
        (msg,) = smtp.inbox.messages()
    assert msg["Subject"] == "[driftline] [FIRING:1] DriftlineFeatureDriftCritical"
    assert msg["To"] == "ml@example.com, oncall@example.com"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    text = plain.get_content()
    assert "Feature age drifted <badly> & fast" in text
    assert "feature=age" in text
    assert "since 2023-11-14T22:13:20Z" in text
    assert "Feature age drifted &lt;badly&gt; &amp; fast" in html.get_content()


def test_email_starttls_and_login(tmp_path: Path) -> None:
    context, cert = self_signed_tls(tmp_path)
    with smtp_server(tls=context, credentials=("alerts", "s3cret")) as smtp:
        notifier = EmailNotifier(
            host="127.0.0.1",
            port=smtp.port,
            sender="alerts@example.com",
            recipients=["ml@example.com"],
            starttls=True,
            username="alerts",
            password="s3cret",
            ca_file=str(cert),
            timeout=5,
        )
        notifier.send(resolved(drift("age")))
        assert smtp.logins == [("alerts", "s3cret")]
        (msg,) = smtp.inbox.messages()
        assert msg["Subject"].startswith("[driftline] [RESOLVED:1]")

        wrong = EmailNotifier(
            host="127.0.0.1",
            port=smtp.port,
            sender="alerts@example.com",
            recipients=["ml@example.com"],
            starttls=True,
            username="alerts",
            password="wrong",
            ca_file=str(cert),
            timeout=5,
        )
        with pytest.raises(DeliveryError, match="SMTP 535") as info:
            deliver(wrong, firing(drift("age")), sleep=Sleeps())
        assert not info.value.retryable
        assert info.value.attempts == 1

        untrusting = EmailNotifier(
            host="127.0.0.1",
            port=smtp.port,
            sender="alerts@example.com",
            recipients=["ml@example.com"],
            starttls=True,
            timeout=5,
        )
        with pytest.raises(DeliveryError, match="SSLCertVerificationError") as info:
            untrusting.send(firing(drift("age")))
        assert not info.value.retryable


def test_email_transient_4xx_is_retried_and_5xx_is_not() -> None:
    with smtp_server() as smtp:
        notifier = EmailNotifier(
            host="127.0.0.1", port=smtp.port, sender="a@example.com", recipients=["b@example.com"]
        )
        smtp.inbox.script.append("451 4.3.0 try again later")
        sleeps = Sleeps()
        assert deliver(notifier, firing(drift("age")), sleep=sleeps) == 2
        assert len(sleeps.calls) == 1
        assert len(smtp.inbox.envelopes) == 1

        smtp.inbox.script.append("554 5.7.1 rejected")
        with pytest.raises(DeliveryError, match="SMTP 554") as info:
            deliver(notifier, firing(drift("age")), sleep=sleeps)
        assert info.value.attempts == 1
        assert len(smtp.inbox.envelopes) == 1


def test_email_validates_its_configuration() -> None:
    with pytest.raises(ConfigurationError, match=r"recipients must be a non-empty list"):
        EmailNotifier(host="h", sender="a@example.com", recipients=[])
    with pytest.raises(ConfigurationError, match=r"port must be in \[1, 65535\], got 0"):
        EmailNotifier(host="h", port=0, sender="a@example.com", recipients=["b@example.com"])


# --- routing and dispatch ---------------------------------------------------------------------


def test_router_routes_by_severity_and_labels() -> None:
    router = Router(
        [
            Route(("pagerduty", "slack"), severity="critical"),
            Route(("slack",), severity="warning"),
            Route(("email",), match={"alertname": "DriftlineFeatureDriftWarning"}, stop=True),
            Route(("never",)),
        ],
        default=("webhook",),
    )
    assert router.route(firing(drift("age"))) == ("pagerduty", "slack", "never")
    assert router.route(firing(drift("age", "warning"))) == ("slack", "email")
    assert Router([Route(("x",), severity="warning")], default=("d",)).route(
        firing(drift("age"))
    ) == ("d",)
    mixed = Notification(
        "firing",
        "all",
        {},
        (AlertEvent(drift("a", "warning"), "firing", T0), AlertEvent(drift("b"), "firing", T0)),
        T0,
    )
    assert mixed.severity == "critical"  # a group routes by its highest severity
    with pytest.raises(ConfigurationError, match="severity must be one of"):
        Route(("x",), severity="fatal")  # type: ignore[arg-type]


def test_dispatch_sends_by_severity_and_isolates_failures() -> None:
    with http_receiver() as pd_rx, http_receiver() as slack_rx:
        notifiers: dict[str, Notifier] = {
            "pagerduty": PagerDutyNotifier("k", url=pd_rx.url),
            "slack": SlackNotifier(slack_rx.url),
        }
        router = Router(
            [
                Route(("pagerduty", "slack", "ghost"), severity="critical"),
                Route(("slack",), severity="warning"),
            ]
        )
        policy = RetryPolicy(retries=1, backoff=0.0, max_backoff=0.0)
        pd_rx.answer((400, {}))
        results = dispatch(firing(drift("age")), router=router, notifiers=notifiers, policy=policy)
        assert [(r.notifier, r.ok, r.attempts) for r in results] == [
            ("pagerduty", False, 1),
            ("slack", True, 1),
            ("ghost", False, 0),
        ]
        assert "HTTP 400" in (results[0].error or "")
        results = dispatch(
            firing(drift("age", "warning")), router=router, notifiers=notifiers, policy=policy
        )
        assert [(r.notifier, r.ok) for r in results] == [("slack", True)]
        assert len(pd_rx.requests) == 1
        assert len(slack_rx.requests) == 2
