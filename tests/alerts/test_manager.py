"""The alert manager: deduplication, grouping, resolve, repeat, persistence, and properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.alerts import Alert, AlertManager, Notification
from driftline.errors import ConfigurationError


def drift(feature: str, severity: str = "warning") -> Alert:
    name = (
        "DriftlineFeatureDriftCritical"
        if severity == "critical"
        else "DriftlineFeatureDriftWarning"
    )
    return Alert(name, severity, {"feature": feature}, f"{feature} drifted")  # type: ignore[arg-type]


NO_CHAMPION = Alert("DriftlineNoChampion", "critical", {}, "no champion")


def summary(notes: list[Notification]) -> list[tuple[str, str, list[str]]]:
    return [
        (n.kind, n.group_key, [e.alert.labels.get("feature", e.alert.name) for e in n.alerts])
        for n in notes
    ]


def test_a_firing_alert_is_sent_once_then_deduplicated() -> None:
    m = AlertManager(repeat_interval=3600)
    assert summary(m.process([drift("age")], now=0)) == [
        ("firing", 'alertname="DriftlineFeatureDriftWarning"', ["age"])
    ]
    for t in (60, 600, 3599):
        assert m.process([drift("age")], now=t) == []


def test_repeat_after_the_interval() -> None:
    m = AlertManager(repeat_interval=3600)
    m.process([drift("age")], now=0)
    m.process([drift("age"), drift("zip")], now=1800)
    notes = m.process([drift("age"), drift("zip")], now=3600)
    assert summary(notes) == [("repeat", 'alertname="DriftlineFeatureDriftWarning"', ["age"])]
    assert notes[0].alerts[0].starts_at == 0  # the episode keeps its start
    assert m.process([drift("age"), drift("zip")], now=5400)[0].kind == "repeat"  # zip's turn
    assert m.process([drift("age"), drift("zip")], now=5401) == []


def test_grouping_by_alertname_and_by_other_labels() -> None:
    m = AlertManager()
    notes = m.process([drift("age"), drift("income"), drift("zip", "critical"), NO_CHAMPION], 0)
    assert summary(notes) == [
        ("firing", 'alertname="DriftlineFeatureDriftCritical"', ["zip"]),
        ("firing", 'alertname="DriftlineFeatureDriftWarning"', ["age", "income"]),
        ("firing", 'alertname="DriftlineNoChampion"', ["DriftlineNoChampion"]),
    ]
    assert notes[1].group_labels == {"alertname": "DriftlineFeatureDriftWarning"}
    assert notes[1].group_firing == 2

    by_severity = AlertManager(group_by=("severity",))
    notes = by_severity.process([drift("age"), drift("zip", "critical"), NO_CHAMPION], 0)
    assert [(n.group_key, len(n.alerts)) for n in notes] == [
        ('severity="critical"', 2),
        ('severity="warning"', 1),
    ]
    everything = AlertManager(group_by=())
    (note,) = everything.process([drift("age"), NO_CHAMPION], 0)
    assert note.group_key == "" and len(note.alerts) == 2


def test_group_wait_gathers_alerts_of_later_evaluations() -> None:
    m = AlertManager(group_wait=300)
    assert m.process([drift("age")], now=0) == []  # the group waits
    assert m.process([drift("age"), drift("income")], now=120) == []
    assert [e.alert.labels["feature"] for e in m.active()] == ["age", "income"]
    notes = m.process([drift("age"), drift("income"), drift("zip")], now=300)
    assert summary(notes) == [
        ("firing", 'alertname="DriftlineFeatureDriftWarning"', ["age", "income", "zip"])
    ]
    assert [e.starts_at for e in notes[0].alerts] == [0, 120, 300]
    # a later newcomer to an announced group starts a new wait of its own
    assert m.process([drift("age"), drift("income"), drift("zip"), drift("sex")], 400) == []
    late = m.process([drift("age"), drift("income"), drift("zip"), drift("sex")], 700)
    assert summary(late) == [("firing", 'alertname="DriftlineFeatureDriftWarning"', ["sex"])]


def test_an_alert_gone_before_its_group_was_sent_is_dropped() -> None:
    m = AlertManager(group_wait=300)
    m.process([drift("age")], now=0)
    assert m.process([], now=100) == []
    assert m.process([], now=400) == []
    assert m.active() == []


def test_resolve_is_sent_once_with_the_episode() -> None:
    m = AlertManager()
    m.process([drift("age"), drift("income")], now=0)
    notes = m.process([drift("income")], now=900)
    assert summary(notes) == [("resolved", 'alertname="DriftlineFeatureDriftWarning"', ["age"])]
    (event,) = notes[0].alerts
    assert (event.status, event.starts_at, event.ends_at) == ("resolved", 0, 900)
    assert notes[0].group_firing == 1  # income still fires
    assert m.process([drift("income")], now=1000) == []
    last = m.process([], now=1100)
    assert summary(last) == [("resolved", 'alertname="DriftlineFeatureDriftWarning"', ["income"])]
    assert last[0].group_firing == 0
    # firing again is a new episode
    again = m.process([drift("age")], now=1200)
    assert again[0].kind == "firing" and again[0].alerts[0].starts_at == 1200


def test_resolved_then_firing_then_repeat_order_in_one_evaluation() -> None:
    m = AlertManager(repeat_interval=100)
    m.process([drift("age"), NO_CHAMPION], now=0)
    notes = m.process([NO_CHAMPION, drift("zip", "critical")], now=100)
    assert [(n.kind, n.group_key) for n in notes] == [
        ("resolved", 'alertname="DriftlineFeatureDriftWarning"'),
        ("firing", 'alertname="DriftlineFeatureDriftCritical"'),
        ("repeat", 'alertname="DriftlineNoChampion"'),
    ]


def test_newest_values_are_kept_while_firing() -> None:
    m = AlertManager(repeat_interval=60)
    m.process([Alert("DriftlineHighErrorRate", "critical", {}, "6% failed", value=0.06)], 0)
    notes = m.process(
        [Alert("DriftlineHighErrorRate", "critical", {}, "9% failed", value=0.09)], 60
    )
    assert notes[0].kind == "repeat"
    assert notes[0].alerts[0].alert.summary == "9% failed"
    assert notes[0].alerts[0].alert.value == 0.09


def test_duplicates_in_one_evaluation_count_once() -> None:
    (note,) = AlertManager().process([drift("age"), drift("age")], now=0)
    assert len(note.alerts) == 1


def test_state_round_trips_through_json() -> None:
    m = AlertManager(group_wait=60, repeat_interval=600)
    m.process([drift("age"), NO_CHAMPION], now=0)
    m.process([drift("age"), NO_CHAMPION], now=60)  # sent
    m.process([drift("age"), NO_CHAMPION, drift("zip")], now=100)  # zip waits
    saved = json.loads(json.dumps(m.to_dict()))
    back = AlertManager.from_dict(saved)
    assert repr(back) == repr(m)
    assert back.active() == m.active()
    for t, firing in ((160, [drift("age"), drift("zip")]), (700, [drift("age"), drift("zip")])):
        assert back.process(firing, t) == m.process(firing, t)

    replaced = AlertManager.from_dict(saved, group_by=("severity",), repeat_interval=30.0)
    assert (replaced.group_by, replaced.group_wait, replaced.repeat_interval) == (
        ("severity",),
        60.0,
        30.0,
    )
    with pytest.raises(ConfigurationError, match="state version must be 1, got 99"):
        AlertManager.from_dict({**saved, "version": 99})


def test_parameters_are_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"repeat_interval must be in \(0, inf\), got 0"):
        AlertManager(repeat_interval=0)
    with pytest.raises(ConfigurationError, match="group_by must be a sequence of label names"):
        AlertManager(group_by="alertname")
    with pytest.raises(ConfigurationError, match="group_by must not repeat"):
        AlertManager(group_by=("alertname", "alertname"))


# --- properties ---------------------------------------------------------------------------------

UNIVERSE = [drift("a"), drift("b"), drift("c", "critical"), NO_CHAMPION]

steps = st.lists(
    st.tuples(
        st.floats(min_value=1, max_value=400, allow_nan=False),
        st.sets(st.integers(min_value=0, max_value=len(UNIVERSE) - 1)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(
    steps=steps,
    group_wait=st.sampled_from([0.0, 30.0, 250.0]),
    repeat_interval=st.sampled_from([100.0, 1000.0]),
    group_by=st.sampled_from([("alertname",), ("severity",), ()]),
    restart_at=st.integers(min_value=0, max_value=30),
)
def test_every_episode_is_announced_once_and_resolved_once(
    steps: list[tuple[float, set[int]]],
    group_wait: float,
    repeat_interval: float,
    group_by: tuple[str, ...],
    restart_at: int,
) -> None:
    m = AlertManager(group_by=group_by, group_wait=group_wait, repeat_interval=repeat_interval)
    now = 0.0
    schedule: list[tuple[float, frozenset[int]]] = []
    for dt, chosen in steps:
        now += dt
        schedule.append((now, frozenset(chosen)))
    schedule.append((now + 10_000, frozenset()))  # everything clears at the end

    # episodes: (fingerprint, start) -> last time it was seen firing
    open_since: dict[str, float] = {}
    episodes: dict[tuple[str, float], float] = {}
    fired: dict[tuple[str, float], int] = {}
    resolves: dict[tuple[str, float], int] = {}
    last_sent: dict[tuple[str, float], float] = {}
    for i, (t, members) in enumerate(schedule):
        if i == restart_at:
            m = AlertManager.from_dict(json.loads(json.dumps(m.to_dict())))
        alerts = [UNIVERSE[j] for j in sorted(members)]
        fps = {a.fingerprint for a in alerts}
        for fp in list(open_since):
            if fp not in fps:
                del open_since[fp]
        for fp in fps:
            open_since.setdefault(fp, t)
            episodes[(fp, open_since[fp])] = t
        for note in m.process(alerts, t):
            assert note.alerts, "no empty notifications"
            assert len({m.group_key(e.alert) for e in note.alerts}) == 1
            for event in note.alerts:
                key = (event.alert.fingerprint, event.starts_at)
                assert key in episodes
                if note.kind == "firing":
                    fired[key] = fired.get(key, 0) + 1
                    assert event.alert.fingerprint in fps
                    last_sent[key] = t
                elif note.kind == "repeat":
                    assert fired.get(key) == 1, "repeat of an alert never announced"
                    assert t - last_sent[key] >= repeat_interval
                    assert event.alert.fingerprint in fps
                    last_sent[key] = t
                else:
                    resolves[key] = resolves.get(key, 0) + 1
                    assert event.alert.fingerprint not in fps
                    assert event.ends_at == t

    for (fp, start), last_seen in episodes.items():
        key = (fp, start)
        assert fired.get(key, 0) <= 1
        if last_seen >= start + group_wait:
            assert fired.get(key) == 1, "an episode that outlived group_wait was never announced"
        assert resolves.get(key, 0) == fired.get(key, 0), "announced episodes resolve once"
    assert m.active() == []
