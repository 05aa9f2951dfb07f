"""The alert runner against a real store and real receivers (an HTTP server for the webhook and
PagerDuty notifiers, an aiosmtpd server for email): a lasting condition pages once across a
restart, a latency that hovers at its threshold is one episode, and the new traffic rule.

Time is injected (``clock``): nothing here depends on how fast the machine is. A "restart" is
what ``driftline serve`` does on start-up: a fresh metric registry (every gauge empty until the
latest report is exported again) and a new runner on the same store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driftline.alerts import AlertsConfig, parse_alerts_config
from driftline.alerts.runner import AlertRunner
from driftline.monitoring.exporter import export_report
from driftline.service.metrics import ServiceMetrics
from driftline.store import Store, open_store, queries
from tests.alerts.receivers import HttpReceiver, SmtpServer, http_receiver, smtp_server

T0 = 1_700_000_000.0
FEATURES = [f"f{i:02d}" for i in range(11)]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Receivers:
    hook: HttpReceiver
    pager: HttpReceiver
    smtp: SmtpServer

    def sent(self) -> Counter[tuple[str, str]]:
        """(notifier, FIRING|RESOLVED) → number of notifications received."""
        out: Counter[tuple[str, str]] = Counter()
        for r in self.hook.requests:
            out["webhook", r.json()["status"].upper()] += 1
        for r in self.pager.requests:
            action = r.json()["event_action"]
            out["pagerduty", {"trigger": "FIRING", "resolve": "RESOLVED"}[action]] += 1
        for msg in self.smtp.inbox.messages():
            out["email", "RESOLVED" if "[RESOLVED" in str(msg["Subject"]) else "FIRING"] += 1
        return out


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    with ExitStack() as stack:
        yield Receivers(
            stack.enter_context(http_receiver()),
            stack.enter_context(http_receiver()),
            stack.enter_context(smtp_server()),
        )


def config(r: Receivers, **extra: Any) -> AlertsConfig:
    return parse_alerts_config(
        {
            "notifiers": {
                "hook": {"type": "webhook", "url": f"{r.hook.url}/alerts"},
                "oncall": {
                    "type": "pagerduty",
                    "routing_key": "k",
                    "url": f"{r.pager.url}/v2/enqueue",
                    "dedup_by": "group",
                },
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": r.smtp.port,
                    "sender": "a@example.com",
                    "recipients": ["b@example.com"],
                },
            },
            "default": ["hook", "oncall", "mail"],
            "delivery": {"retries": 0},
            **extra,
        },
        environ={},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.dispose()


def serving() -> ServiceMetrics:
    """The metrics of a process that just started and loaded its champion."""
    m = ServiceMetrics()
    m.set_model("champion", 1, "sklearn")
    return m


def drift_report(ts: float) -> dict[str, Any]:
    return {
        "ts": ts,
        "data_drift": {
            "severity": "critical",
            "features": [{"feature": f, "severity": "critical"} for f in FEATURES],
        },
        "prediction_drift": {"severity": "none"},
    }


def run_until(runner: AlertRunner, clock: Clock, end: float, step: float = 15.0) -> None:
    while clock.t + step <= end:
        clock.t += step
        runner.run()


def test_a_lasting_drift_pages_once_across_a_restart(store: Store, receivers: Receivers) -> None:
    clock = Clock(T0)
    cfg = config(receivers)
    metrics = serving()
    runner = AlertRunner(store=store, metrics=metrics, config=cfg, model_name="m", clock=clock)
    export_report(metrics, drift_report(T0))
    run_until(runner, clock, T0 + 330)  # past the 5-minute `for` of the critical drift
    firing_once = Counter(
        {("webhook", "FIRING"): 1, ("pagerduty", "FIRING"): 1, ("email", "FIRING"): 1}
    )
    assert receivers.sent() == firing_once
    [note] = receivers.hook.requests
    assert len(note.json()["alerts"]) == 11  # one group: the 11 features

    # Restart: a fresh registry (no drift gauges until the report is exported again) and a
    # new runner on the same store.
    clock.t = T0 + 400
    metrics = serving()
    runner = AlertRunner(store=store, metrics=metrics, config=cfg, model_name="m", clock=clock)
    run_until(runner, clock, T0 + 445)  # the exporter has not caught up yet
    export_report(metrics, drift_report(T0))  # the latest stored report, re-exported
    run_until(runner, clock, T0 + 600)
    export_report(metrics, drift_report(T0 + 600))  # the next monitor run: still critical
    run_until(runner, clock, T0 + 1_500)
    assert receivers.sent() == firing_once  # nothing more: no RESOLVED, no second FIRING

    with store.sessions() as session:
        episodes = queries.list_alerts(session=session, limit=100)
    assert len(episodes) == 11 and {e.status for e in episodes} == {"firing"}
    # pending from the first evaluation (T0 + 15), firing 300 s later; the restart kept that
    assert {e.starts_at for e in episodes} == {T0 + 315}
    assert (
        metrics.registry.get_sample_value(
            "driftline_alerts_firing",
            {"alertname": "DriftlineFeatureDriftCritical", "severity": "critical"},
        )
        == 11
    )


def test_a_pending_alert_keeps_its_clock_across_a_restart(
    store: Store, receivers: Receivers
) -> None:
    clock = Clock(T0)
    cfg = config(receivers)
    metrics = serving()
    runner = AlertRunner(store=store, metrics=metrics, config=cfg, model_name="m", clock=clock)
    export_report(metrics, drift_report(T0))
    run_until(runner, clock, T0 + 200)  # pending for 185 s of the 300
    assert receivers.sent() == Counter()
    clock.t = T0 + 220
    metrics = serving()
    runner = AlertRunner(store=store, metrics=metrics, config=cfg, model_name="m", clock=clock)
    export_report(metrics, drift_report(T0))
    run_until(runner, clock, T0 + 310)
    assert receivers.sent() == Counter()  # pending since the first evaluation, T0 + 15
    run_until(runner, clock, T0 + 325)
    assert receivers.sent()["webhook", "FIRING"] == 1  # 300 s after it became pending


def test_a_drift_that_went_away_resolves_once_after_keep_firing_for(
    store: Store, receivers: Receivers
) -> None:
    clock = Clock(T0)
    metrics = serving()
    runner = AlertRunner(
        store=store, metrics=metrics, config=config(receivers), model_name="m", clock=clock
    )
    export_report(metrics, drift_report(T0))
    run_until(runner, clock, T0 + 330)
    calm = drift_report(T0 + 330)
    calm["data_drift"] = {
        "severity": "none",
        "features": [{"feature": f, "severity": "none"} for f in FEATURES],
    }
    export_report(metrics, calm)
    run_until(runner, clock, T0 + 330 + 885)  # 14 min 45 s of the 15 min keep_firing_for
    assert receivers.sent()["webhook", "RESOLVED"] == 0
    run_until(runner, clock, T0 + 330 + 915)
    run_until(runner, clock, T0 + 3_000)
    assert receivers.sent() == Counter(
        {
            ("webhook", "FIRING"): 1,
            ("pagerduty", "FIRING"): 1,
            ("email", "FIRING"): 1,
            ("webhook", "RESOLVED"): 1,
            ("pagerduty", "RESOLVED"): 1,
            ("email", "RESOLVED"): 1,
        }
    )


def observe(metrics: ServiceMetrics, seconds: float, n: int) -> None:
    for _ in range(n):
        metrics.http_duration.labels(endpoint="/predict").observe(seconds)


def test_a_latency_hovering_at_its_threshold_is_one_episode(
    store: Store, receivers: Receivers
) -> None:
    """/predict answers in 0.55 s for two minutes, then 0.45 s for two, for 40 minutes (30
    requests per 30 s), then fast: one FIRING, one RESOLVED at the end."""
    clock = Clock(T0)
    metrics = serving()
    runner = AlertRunner(
        store=store, metrics=metrics, config=config(receivers), model_name="m", clock=clock
    )
    for i in range(80):
        slow = (i // 4) % 2 == 0
        observe(metrics, 0.55 if slow else 0.45, 30)
        clock.t += 30
        runner.run()
    assert receivers.sent()["webhook", "FIRING"] == 1
    assert receivers.sent()["webhook", "RESOLVED"] == 0
    for _ in range(60):  # 30 minutes of fast answers
        observe(metrics, 0.01, 30)
        clock.t += 30
        runner.run()
    sent = receivers.sent()
    assert (sent["webhook", "FIRING"], sent["webhook", "RESOLVED"]) == (1, 1)
    with store.sessions() as session:
        episodes = queries.list_alerts(session=session, limit=100)
    assert [(e.name, e.status) for e in episodes] == [("DriftlineHighLatencyP99", "resolved")]


def test_predictions_stopped_fires_once_survives_a_restart_and_not_on_a_fresh_start(
    store: Store, receivers: Receivers
) -> None:
    clock = Clock(T0)
    metrics = serving()
    runner = AlertRunner(
        store=store, metrics=metrics, config=config(receivers), model_name="m", clock=clock
    )
    for _ in range(40):  # 20 minutes of traffic
        metrics.predictions.labels(variant="champion", predicted_class="0").inc(50)
        clock.t += 30
        runner.run()
    assert receivers.sent() == Counter()
    for _ in range(40):  # then nothing for 20 minutes
        clock.t += 30
        runner.run()
    with store.sessions() as session:
        [episode] = queries.list_alerts(session=session, limit=100)
    assert episode.name == "DriftlinePredictionsStopped"
    # silent for 10 minutes, then 5 minutes of `for`: it fires 15 minutes after the stop
    assert T0 + 1_200 + 900 <= episode.starts_at <= T0 + 1_200 + 930
    assert receivers.sent()["webhook", "FIRING"] == 1
    # Restart while it lasts: no history, no baseline, but nothing is resolved.
    metrics = serving()
    runner = AlertRunner(
        store=store, metrics=metrics, config=config(receivers), model_name="m", clock=clock
    )
    for _ in range(10):
        clock.t += 30
        runner.run()
    assert receivers.sent()["webhook", "RESOLVED"] == 0
    metrics.predictions.labels(variant="champion", predicted_class="0").inc(50)
    clock.t += 30
    runner.run()  # traffic is back
    assert receivers.sent()["webhook", "RESOLVED"] == 1
    assert receivers.sent()["webhook", "FIRING"] == 1

    # A fresh server with no traffic yet has nothing that could have stopped.
    fresh = serving()
    other = AlertRunner(
        store=store, metrics=fresh, config=config(receivers), model_name="n", clock=clock
    )
    for _ in range(100):
        clock.t += 30
        other.run()
    assert receivers.sent()["webhook", "FIRING"] == 1


def test_a_confidence_hovering_at_its_threshold_is_one_episode(
    store: Store, receivers: Receivers
) -> None:
    """Mean confidence 0.62 for two minutes, then 0.68 for two, for an hour, then 0.9: one
    FIRING (after the 30-minute `for`), one RESOLVED (15 minutes above 0.7)."""
    clock = Clock(T0)
    metrics = serving()
    runner = AlertRunner(
        store=store, metrics=metrics, config=config(receivers), model_name="m", clock=clock
    )
    for i in range(120):
        low = (i // 4) % 2 == 0
        for _ in range(30):
            metrics.confidence.observe(0.62 if low else 0.68)
        clock.t += 30
        runner.run()
    assert (receivers.sent()["webhook", "FIRING"], receivers.sent()["webhook", "RESOLVED"]) == (
        1,
        0,
    )
    for _ in range(60):
        for _ in range(30):
            metrics.confidence.observe(0.9)
        clock.t += 30
        runner.run()
    assert (receivers.sent()["webhook", "FIRING"], receivers.sent()["webhook", "RESOLVED"]) == (
        1,
        1,
    )
    with store.sessions() as session:
        episodes = queries.list_alerts(session=session, limit=100)
    assert [(e.name, e.status) for e in episodes] == [("DriftlineLowConfidence", "resolved")]


def test_an_upgrade_keeps_the_alerts_an_older_release_announced(
    store: Store, receivers: Receivers
) -> None:
    """An older release stored only the manager's state; the new runner takes the alerts it
    announced as firing instead of resolving them."""
    from driftline.store.tables import StateEntry

    clock = Clock(T0)
    cfg = config(receivers, rules={"DriftlineFeatureDriftCritical": {"for": 0}})
    metrics = serving()
    runner = AlertRunner(store=store, metrics=metrics, config=cfg, model_name="m", clock=clock)
    export_report(metrics, drift_report(T0))
    run_until(runner, clock, T0 + 30)
    assert receivers.sent()["webhook", "FIRING"] == 1
    with store.sessions.begin() as session:  # what an older release left behind
        session.delete(session.get(StateEntry, runner.engine_key))
    metrics = serving()
    runner = AlertRunner(store=store, metrics=metrics, config=cfg, model_name="m", clock=clock)
    run_until(runner, clock, T0 + 120)  # no report exported yet
    export_report(metrics, drift_report(T0 + 120))
    run_until(runner, clock, T0 + 600)
    assert receivers.sent() == Counter(
        {("webhook", "FIRING"): 1, ("pagerduty", "FIRING"): 1, ("email", "FIRING"): 1}
    )
    engine, _ = runner.load()
    assert len(engine.firing()) == 11
