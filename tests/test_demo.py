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


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("duration", "drift_at", "seed"),
    [
        (240, 0.05, 7),  # drift 12 s in; ends when the story is told (~75 s idle)
        (200, 0.3, 11),  # the case: --duration 200, drift at 60 s, another seed
    ],
)
def test_demo_shows_drift_detected_and_the_closed_loop(
    settings: Settings, duration: float, drift_at: float, seed: int
) -> None:
    """The whole story on a short clock: drift → detected → retrain → gate → shadow → canary
    → promoted → watched; then act two's bad challenger is withdrawn by the SLO guard. A
    challenger the gate rejects is retried on more drifted labels, so the story does not hinge
    on the first challenger: the one that passes is followed through the rollout."""
    console = Console(record=True, width=160)
    options = DemoOptions(
        duration=duration,  # the longest it may take: it ends when the story is told
        until_story_ends=True,
        rate=60,
        seed=seed,
        port=free_port(),
        train_rows=12_000,
        label_delay=0.5,
        model="hgb",  # a linear model cannot learn a rule that changes in one segment
        drift_at=drift_at,
        monitor_every=2.0,
        monitor_window=12.0,
    )
    # The story is judged on accuracy and stages: the challenger must not be withdrawn
    # because this machine is busy, and the bad one must fall on accuracy.
    stats = run_demo(settings.model_copy(update=LATENCY_NEVER_DECIDES), options, console)
    events = [text for _, _, text in stats.timeline]
    assert events[0].startswith("drift injected"), events
    assert any(e.startswith("data drift reported") and "debt_to_income" in e for e in events)
    passed = [e for e in events if e.startswith("gate passed v")]
    assert passed, events
    good = int(passed[0].removeprefix("gate passed v").split(":")[0])
    rejected = [e for e in events if e.startswith("gate rejected")]
    assert good == 2 + len(rejected)  # every earlier challenger was rejected, then retried
    retrains = [i for i, e in enumerate(events) if e.startswith("retrain triggered")]
    assert len(retrains) == 1 + len(rejected), events
    bad = good + 1
    order = [
        "retrain triggered",
        f"gate passed v{good}",
        f"v{good} shadows the champion",
        f"v{good} answers",
        f"v{good} promoted to champion",
        f"rollout of v{good} complete",
        f"act two: a deliberately bad challenger v{bad}",
        f"v{bad} withdrawn: SLO breach",
    ]
    positions = []
    for step in order:
        found = [i for i, e in enumerate(events) if e.startswith(step)]
        assert found, (step, events)
        positions.append(found[-1] if step == "retrain triggered" else found[0])
    assert positions == sorted(positions), events
    assert good in stats.model_versions and bad in stats.model_versions  # the canary answered
    assert "what happened" in console.export_text()
