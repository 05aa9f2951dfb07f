"""The rule engine: ``for`` (pending), ``keep_firing_for``, hysteresis bands, "cannot judge",
persistence, and properties over random series. Time is an argument: no clock here."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.alerts import Evaluation, MetricSnapshot, RuleEngine, RuleSpec
from driftline.alerts.model import UNKNOWN
from driftline.errors import ConfigurationError

FIRE, RESOLVE = 0.5, 0.4


def p99(snapshot: MetricSnapshot, previous: MetricSnapshot | None, now: float | None) -> Evaluation:
    value = snapshot.get("p99")
    if value is None:
        return UNKNOWN
    return Evaluation(
        firing=(({}, value),) if value > FIRE else (),
        holding=(({}, value),) if RESOLVE <= value <= FIRE else (),
    )


def engine(for_seconds: float = 60.0, keep: float = 120.0) -> RuleEngine:
    return RuleEngine(
        [
            RuleSpec(
                "Slow",
                "warning",
                "p99 {value}",
                p99,
                for_seconds=for_seconds,
                keep_firing_for_seconds=keep,
            )
        ]
    )


def step(e: RuleEngine, t: float, value: float | None) -> bool:
    snap = MetricSnapshot() if value is None else MetricSnapshot.from_dict({"p99": value})
    return [a.name for a in e.evaluate(snap, now=t)] == ["Slow"]


def test_an_alert_fires_only_after_its_condition_held_for_its_duration() -> None:
    e = engine(for_seconds=60)
    assert not step(e, 0, 0.9)
    assert [a.name for a, since in e.pending()] == ["Slow"]
    assert not step(e, 59, 0.9)
    assert step(e, 60, 0.9)
    assert [(a.name, since) for a, since in e.firing()] == [("Slow", 60.0)]


def test_a_blip_shorter_than_for_is_forgotten() -> None:
    e = engine(for_seconds=60)
    assert not step(e, 0, 0.9)
    assert not step(e, 15, 0.1)  # clear while pending: forgotten
    assert e.pending() == [] and e.firing() == []
    assert not step(e, 30, 0.9)  # a new pending episode starts from here
    assert not step(e, 75, 0.9)
    assert step(e, 90, 0.9)


def test_keep_firing_for_and_the_resolve_threshold() -> None:
    e = engine(for_seconds=0, keep=120)
    assert step(e, 0, 0.9)
    assert step(e, 100, 0.45)  # in the band: firing, no clear timer
    assert step(e, 200, 0.3)  # clear from 200
    assert step(e, 250, 0.6)  # back above: the timer restarts
    assert step(e, 300, 0.1)
    assert step(e, 419, 0.1)
    assert not step(e, 420, 0.1)  # clear for 120 s
    assert e.firing() == []


def test_the_band_does_not_start_an_alert() -> None:
    e = engine(for_seconds=0, keep=0)
    for t in range(0, 600, 15):
        assert not step(e, t, 0.45)
    assert e.pending() == []


def test_cannot_judge_keeps_pending_and_firing_alerts_and_their_clocks() -> None:
    e = engine(for_seconds=60, keep=60)
    assert not step(e, 0, 0.9)
    assert not step(e, 30, None)  # no data: still pending, not reset
    assert step(e, 60, 0.9)  # pending since 0
    for t in (100, 1_000, 10_000):
        assert step(e, t, None)  # no data for hours: still firing
    assert step(e, 10_015, 0.1)
    assert not step(e, 10_075, 0.1)


def test_state_round_trips_through_json_and_a_new_configuration() -> None:
    e = engine(for_seconds=60, keep=60)
    step(e, 0, 0.9)
    state = json.loads(json.dumps(e.to_dict()))
    longer = RuleEngine([RuleSpec("Slow", "warning", "p99 {value}", p99, for_seconds=120)])
    back = RuleEngine.from_dict(state, longer.rules)
    assert not step(back, 60, 0.9)  # pending since 0 under the new for of 120 s
    assert step(back, 120, 0.9)
    gone = RuleEngine.from_dict(state, [])  # a rule no longer configured: its state is dropped
    assert gone.pending() == []
    with pytest.raises(ConfigurationError, match="state version must be 1, got 7"):
        RuleEngine.from_dict({"version": 7}, longer.rules)


def test_rules_need_distinct_names() -> None:
    rule = RuleSpec("Slow", "warning", "x", p99)
    with pytest.raises(ConfigurationError, match="distinct names"):
        RuleEngine([rule, rule])


def episodes(e: RuleEngine, values: list[float | None], dt: float) -> int:
    count, was = 0, False
    for i, value in enumerate(values):
        now = step(e, i * dt, value)
        count += now and not was
        was = now
    return count


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=RESOLVE, max_value=1.0) | st.none(), max_size=80))
def test_a_signal_that_never_falls_below_the_resolve_threshold_is_one_episode(
    values: list[float | None],
) -> None:
    assert episodes(engine(for_seconds=30, keep=0), values, dt=15) <= 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=80),
    st.integers(min_value=0, max_value=8),
)
def test_an_episode_lasts_at_least_for_plus_keep_and_never_fires_early(
    values: list[float], keep_steps: int
) -> None:
    """Property: with ``for`` of 2 steps and ``keep`` of k steps, an alert is firing at step i
    only if the condition fired at some step j <= i - 2 (held since), and it resolves only
    after k steps below the resolve threshold."""
    e = engine(for_seconds=30, keep=15 * keep_steps)
    firing = [step(e, i * 15, v) for i, v in enumerate(values)]
    for i, on in enumerate(firing):
        if on and not (i > 0 and firing[i - 1]):  # an episode starts at i
            assert any(
                values[j] > FIRE and all(v >= RESOLVE for v in values[j : i + 1])
                for j in range(i - 1)
            )
        if not on and i > 0 and firing[i - 1]:  # it ends at i
            assert all(v < RESOLVE for v in values[max(0, i - keep_steps) : i + 1])
