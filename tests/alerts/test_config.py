"""The alerting configuration file: the example parses, mistakes name their key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driftline.alerts import (
    AlertsConfig,
    EmailNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    load_alerts_config,
    parse_alerts_config,
)
from driftline.alerts.model import Alert, AlertEvent, Notification
from driftline.alerts.rules import ALERT_NAMES
from driftline.errors import ConfigurationError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "alerts.example.yml"
SECRETS = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "PAGERDUTY_ROUTING_KEY": "R0UT1NG",
    "SMTP_PASSWORD": "s3cret",
}


def note(name: str, severity: str) -> Notification:
    alert = Alert(name, severity, {}, "x")  # type: ignore[arg-type]
    return Notification("firing", "k", {}, (AlertEvent(alert, "firing", 0.0),), 0.0)


def test_the_example_file_loads() -> None:
    cfg = load_alerts_config(EXAMPLE, environ=SECRETS)
    assert sorted(cfg.notifiers) == ["ml-team", "oncall", "ops-hook", "team-slack"]
    slack = cfg.notifiers["team-slack"]
    assert isinstance(slack, SlackNotifier) and slack.url == SECRETS["SLACK_WEBHOOK_URL"]
    pd = cfg.notifiers["oncall"]
    assert isinstance(pd, PagerDutyNotifier)
    assert (pd.routing_key, pd.source, pd.url) == (
        "R0UT1NG",
        "driftline-prod",
        "https://events.pagerduty.com/v2/enqueue",
    )
    hook = cfg.notifiers["ops-hook"]
    assert isinstance(hook, WebhookNotifier) and hook.headers == {
        "Authorization": "Bearer replace-me"
    }
    email = cfg.notifiers["ml-team"]
    assert isinstance(email, EmailNotifier)
    assert (email.port, email.starttls, email.password) == (587, True, "s3cret")
    assert cfg.router.route(note("DriftlineNoChampion", "critical")) == (
        "oncall",
        "team-slack",
        "ops-hook",
    )
    assert cfg.router.route(note("DriftlineRollback", "warning")) == (
        "team-slack",
        "ops-hook",
        "ml-team",
    )
    manager = cfg.manager()
    assert (manager.group_by, manager.group_wait, manager.repeat_interval) == (
        ("alertname",),
        0.0,
        14400.0,
    )
    assert cfg.thresholds.report_stale_seconds == 3600.0
    assert cfg.retry.max_retry_after == 60.0
    assert len(cfg.rules()) == len(ALERT_NAMES)


def test_json_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(
        json.dumps(
            {
                "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/h"}},
                "default": ["hook"],
                "manager": {"group_wait": "30s", "group_by": ["severity"]},
            }
        )
    )
    cfg = load_alerts_config(path)
    assert cfg.router.route(note("X", "warning")) == ("hook",)
    assert (cfg.group_wait, cfg.group_by) == (30.0, ("severity",))

    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing yet\n")
    assert load_alerts_config(empty) == AlertsConfig()


BAD: list[tuple[Any, str]] = [
    ({"notifier": {}}, r"top level: unknown key 'notifier' \(allowed: default, delivery"),
    ({"notifiers": {"s": {"type": "teams"}}}, r"notifiers\.s\.type: must be one of"),
    (
        {"notifiers": {"s": {"type": "slack", "urll": "x"}}},
        r"notifiers\.s: unknown key 'urll' \(allowed: timeout, url, url_env\)",
    ),
    ({"notifiers": {"p": {"type": "pagerduty"}}}, r"notifiers\.p\.routing_key: required"),
    (
        {"notifiers": {"p": {"type": "pagerduty", "routing_key_env": "NOPE"}}},
        r"notifiers\.p\.routing_key_env: environment variable NOPE is not set",
    ),
    (
        {"notifiers": {"s": {"type": "slack", "url": "x", "url_env": "Y"}}},
        r"notifiers\.s: give url or url_env, not both",
    ),
    (
        {"notifiers": {"s": {"type": "slack", "url": "hooks.slack.com"}}},
        r"notifiers\.s: url must be an http:// or https:// URL, got 'hooks.slack.com'",
    ),
    (
        {"notifiers": {"w": {"type": "webhook", "url": "http://h", "timeout": "fast"}}},
        r"notifiers\.w\.timeout: must be a number, got 'fast'",
    ),
    (
        {
            "notifiers": {
                "e": {"type": "email", "host": "h", "sender": "a@b.c", "recipients": "x@y.z"}
            }
        },
        r"notifiers\.e\.recipients: must be a list of strings",
    ),
    (
        {
            "notifiers": {
                "e": {
                    "type": "email",
                    "host": "h",
                    "port": 70000,
                    "sender": "a@b.c",
                    "recipients": ["x@y.z"],
                }
            }
        },
        r"notifiers\.e: port must be in \[1, 65535\], got 70000",
    ),
    ({"routes": {"severity": "critical"}}, r"routes: must be a list"),
    ({"routes": [{"severity": "critical"}]}, r"routes\[0\]\.notifiers: required"),
    (
        {"routes": [{"notifiers": ["x"], "severity": "page"}]},
        r"unknown notifier 'x'|routes\[0\]: severity must be one of",
    ),
    ({"default": ["ghost"]}, r"default: unknown notifier 'ghost' \(defined: none\)"),
    ({"manager": {"group_wait": "soon"}}, r"manager\.group_wait must be a duration"),
    ({"manager": {"repeat_interval": 0}}, r"manager: repeat_interval must be in \(0, inf\)"),
    ({"thresholds": {"error_rate": 2}}, r"thresholds: error_rate must be in \[0.0, 1.0\], got 2"),
    ({"thresholds": {"min_requests": 2.5}}, r"thresholds\.min_requests: must be an integer"),
    ({"thresholds": {"error": 0.1}}, r"thresholds: unknown key 'error'"),
    ({"delivery": {"retries": -1}}, r"delivery: retries must be in \[0, 100\], got -1"),
    ({"rules": {"HighLatency": {"for": "1m"}}}, r"rules: unknown key 'HighLatency'"),
    (
        {"rules": {"DriftlineHighLatencyP99": {"fro": "1m"}}},
        r"rules\.DriftlineHighLatencyP99: unknown key 'fro'",
    ),
    (
        {"rules": {"DriftlineHighLatencyP99": {"for": "soon"}}},
        r"rules\.DriftlineHighLatencyP99\.for must be a duration",
    ),
    (
        {"rules": {"DriftlineHighLatencyP99": {"keep_firing_for": -5}}},
        r"rules\.DriftlineHighLatencyP99\.keep_firing_for must be a duration.*got -5",
    ),
    (
        {"thresholds": {"min_confidence_resolve": 0.6}},
        r"thresholds: min_confidence_resolve must be at least min_confidence \(0\.65\)",
    ),
    ([1, 2], r"the file: must be a mapping, got list"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_mistakes_name_the_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_alerts_config(data, environ={})


def test_rule_durations_and_resolve_thresholds() -> None:
    cfg = parse_alerts_config(
        {
            "rules": {
                "DriftlineHighLatencyP99": {"for": "2m", "keep_firing_for": "30m"},
                "DriftlineFeatureDriftCritical": {"for": 0},  # keep_firing_for stays default
            },
            "thresholds": {
                "latency_p99_resolve_seconds": 0.3,
                "rate_window_seconds": "10m",
                "traffic_window_seconds": "15m",
                "min_labels": 100,
            },
        },
        environ={},
    )
    rules = {r.name: r for r in cfg.rules()}
    latency = rules["DriftlineHighLatencyP99"]
    assert (latency.for_seconds, latency.keep_firing_for_seconds) == (120.0, 1800.0)
    drift = rules["DriftlineFeatureDriftCritical"]
    assert (drift.for_seconds, drift.keep_firing_for_seconds) == (0.0, 900.0)
    low = rules["DriftlineLowConfidence"]  # untouched: the defaults
    assert (low.for_seconds, low.keep_firing_for_seconds) == (1800.0, 900.0)
    t = cfg.thresholds
    assert (t.latency_p99_resolve_seconds, t.rate_window_seconds) == (0.3, 600.0)
    assert (t.traffic_window_seconds, t.min_labels) == (900.0, 100)


def test_route_severity_is_checked() -> None:
    data = {
        "notifiers": {"x": {"type": "slack", "url": "https://h"}},
        "routes": [{"notifiers": ["x"], "severity": "page"}],
    }
    with pytest.raises(ConfigurationError, match=r"routes\[0\]: severity must be one of"):
        parse_alerts_config(data)


def test_file_errors_start_with_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the alerting configuration"):
        load_alerts_config(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("notifiers: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"broken\.yml: not valid YAML"):
        load_alerts_config(broken)
    wrong = tmp_path / "wrong.yml"
    wrong.write_text("default: [ghost]\n")
    with pytest.raises(ConfigurationError, match=r"^wrong\.yml: default: unknown notifier"):
        load_alerts_config(wrong)
