from __future__ import annotations

import socket

import pytest
from rich.console import Console

from driftline.config import Settings
from driftline.demo import DemoOptions, run_demo
from driftline.errors import ConfigurationError
from tests.conftest import LATENCY_NEVER_DECIDES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_end_to_end(settings: Settings) -> None:
    console = Console(record=True, width=120)
    options = DemoOptions(
        duration=4, rate=40, port=free_port(), train_rows=3_000, label_delay=0.5, model="logreg"
    )
    stats = run_demo(settings, options, console)
    assert stats.ok >= 100 and stats.errors == 0
    assert stats.labels_sent == stats.ok  # every label still due was sent at the end
    assert stats.accuracy is not None and stats.accuracy > 0.65
    text = console.export_text()
    assert "registered version 1 as champion" in text and "/docs" in text
    assert f"live dashboard: http://{options.host}:{options.port}/dashboard" in text


def test_demo_refuses_a_busy_port(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            run_demo(settings, DemoOptions(port=port), Console(record=True))
        except ConfigurationError as exc:
            assert "--port" in str(exc)
        else:
            raise AssertionError("expected a busy-port error")


@pytest.mark.timeout(600)
def test_demo_shows_drift_detected_and_the_closed_loop(settings: Settings) -> None:
    """The whole story on a short clock: drift → detected → retrain → gate → shadow → canary
    → promoted → watched; then act two's bad challenger is withdrawn by the SLO guard."""
    console = Console(record=True, width=160)
    options = DemoOptions(
        duration=240,  # the longest it may take: it ends when the story is told (~75 s idle)
        until_story_ends=True,
        rate=60,
        port=free_port(),
        train_rows=12_000,
        label_delay=0.5,
        model="hgb",  # a linear model cannot learn a rule that changes in one segment
        drift_at=0.04,  # 12 s in
        monitor_every=2.0,
        monitor_window=12.0,
    )
    # The story is judged on accuracy and stages: v2 must not be withdrawn because this
    # machine is busy (a p95 latency 3x the champion's), and v3 must fall on accuracy.
    stats = run_demo(settings.model_copy(update=LATENCY_NEVER_DECIDES), options, console)
    events = [text for _, _, text in stats.timeline]
    assert events[0].startswith("drift injected")
    assert any(e.startswith("data drift reported") and "debt_to_income" in e for e in events)
    order = [
        "retrain triggered",
        "gate passed v2",
        "v2 shadows the champion",
        "v2 answers",
        "v2 promoted to champion",
        "rollout of v2 complete",
        "act two: a deliberately bad challenger v3",
        "v3 withdrawn: SLO breach",
    ]
    positions = []
    for step in order:
        found = [i for i, e in enumerate(events) if e.startswith(step)]
        assert found, (step, events)
        positions.append(found[0])
    assert positions == sorted(positions), events
    assert 2 in stats.model_versions and 3 in stats.model_versions  # the canary answered
    assert "what happened" in console.export_text()
