"""Pending, firing and clearing: what Prometheus's rule evaluation adds between a condition and
Alertmanager, for the built-in rules.

Per alert (rule and labels) the :class:`RuleEngine` keeps a small state machine, fed once per
evaluation with every rule's :class:`~driftline.alerts.model.Evaluation` and the time:

* **pending** -- the condition holds, but not yet for the rule's ``for_seconds``. A pending
  alert whose condition stops holding is forgotten (nobody ever heard of it);
* **firing** -- it held for ``for_seconds``: the alert goes to the alert manager (which
  notifies). A firing alert stays firing while its condition holds *or* its value stays in the
  hysteresis band (past the resolve threshold; see ``Evaluation.holding``);
* **resolved** -- the condition has been clear for ``keep_firing_for_seconds``: the alert
  leaves the list the manager gets, and the manager sends the resolve.

When a rule cannot judge (``Evaluation.known`` is false: the report gauges are not exported
yet after a restart, no earlier snapshot for a rate, too few requests), its alerts keep their
state and clocks: missing data is neither a recovery nor a confirmation.

Pure: no I/O, no clock; the state round-trips through :meth:`RuleEngine.to_dict` /
:meth:`RuleEngine.from_dict`, so pending timers and firing episodes survive a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.alerts.model import Alert, MetricHistory, MetricSnapshot, RuleSpec
from driftline.errors import ConfigurationError

__all__ = ["RuleEngine"]

STATE_VERSION = 1


@dataclass
class _State:
    alert: Alert
    active_since: float  # the condition first held (start of pending)
    firing_since: float | None = None  # None while pending
    clear_since: float | None = None  # a firing alert's condition stopped holding then

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert.to_dict(),
            "active_since": self.active_since,
            "firing_since": self.firing_since,
            "clear_since": self.clear_since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _State:
        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            alert=Alert.from_dict(data["alert"]),
            active_since=float(data["active_since"]),
            firing_since=opt("firing_since"),
            clear_since=opt("clear_since"),
        )


class RuleEngine:
    """Evaluate rules with ``for`` and ``keep_firing_for`` and hysteresis; see the module
    docstring.

    Parameters
    ----------
    rules
        The rules to evaluate (their ``for_seconds`` and ``keep_firing_for_seconds`` apply).

    Example
    -------
    >>> from driftline.alerts.model import Evaluation
    >>> def slow(snap, prev, now):  # p99 above 0.5 fires, above 0.4 holds
    ...     p99 = snap.get("p99") or 0.0
    ...     return Evaluation(firing=(({}, p99),) if p99 > 0.5 else (),
    ...                       holding=(({}, p99),) if 0.4 < p99 <= 0.5 else ())
    >>> rule = RuleSpec("Slow", "warning", "p99 {value}", slow, for_seconds=60,
    ...                 keep_firing_for_seconds=120)
    >>> engine = RuleEngine([rule])
    >>> def at(t, p99):
    ...     return [a.name for a in engine.evaluate(MetricSnapshot.from_dict({"p99": p99}), now=t)]
    >>> at(0, 0.6), at(30, 0.45), at(60, 0.7)  # pending, held in the band, fires after 60 s
    ([], [], ['Slow'])
    >>> at(90, 0.45), at(120, 0.1), at(200, 0.1), at(240, 0.1)  # clear for 120 s: resolved
    (['Slow'], ['Slow'], ['Slow'], [])
    """

    def __init__(self, rules: Sequence[RuleSpec]) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"rules must have distinct names, got {names!r}")
        self.rules = tuple(rules)
        self._states: dict[str, _State] = {}

    def __repr__(self) -> str:
        return f"RuleEngine({len(self.rules)} rules, {len(self._states)} active)"

    def evaluate(
        self,
        snapshot: MetricSnapshot,
        *,
        now: float,
        previous: MetricSnapshot | None = None,
        history: MetricHistory | None = None,
    ) -> list[Alert]:
        """Judge every rule at ``now`` and return the alerts firing (the input of
        ``AlertManager.process``), in rule order."""
        now = float(now)
        out: list[Alert] = []
        for rule in self.rules:
            firing, holding, known = rule.judge(
                snapshot, previous=previous, now=now, history=history
            )
            mine = {fp: s for fp, s in self._states.items() if s.alert.name == rule.name}
            if known:
                self._step(rule, mine, firing, holding, now)
            out += [
                s.alert
                for fp, s in self._states.items()
                if s.alert.name == rule.name and s.firing_since is not None
            ]
        known_names = {r.name for r in self.rules}
        for fp in [fp for fp, s in self._states.items() if s.alert.name not in known_names]:
            del self._states[fp]  # a rule no longer configured
        return out

    def _step(
        self,
        rule: RuleSpec,
        mine: dict[str, _State],
        firing: list[Alert],
        holding: list[Alert],
        now: float,
    ) -> None:
        seen: set[str] = set()
        for alert in firing:
            seen.add(alert.fingerprint)
            state = self._states.get(alert.fingerprint)
            if state is None:
                state = self._states[alert.fingerprint] = _State(alert, active_since=now)
            state.alert = alert  # newest summary and value
            state.clear_since = None
            if state.firing_since is None and now - state.active_since >= rule.for_seconds:
                state.firing_since = now
        for alert in holding:
            state = self._states.get(alert.fingerprint)
            if state is None or alert.fingerprint in seen:
                continue  # the band starts nothing
            seen.add(alert.fingerprint)
            state.alert = alert
            state.clear_since = None
            if state.firing_since is None and now - state.active_since >= rule.for_seconds:
                state.firing_since = now
        for fp, state in mine.items():
            if fp in seen:
                continue
            if state.firing_since is None:
                del self._states[fp]  # pending and clear: forgotten
                continue
            if state.clear_since is None:
                state.clear_since = now
            if now - state.clear_since >= rule.keep_firing_for_seconds:
                del self._states[fp]

    def pending(self) -> list[tuple[Alert, float]]:
        """Alerts waiting for their ``for`` duration, with the time they became active."""
        return sorted(
            ((s.alert, s.active_since) for s in self._states.values() if s.firing_since is None),
            key=lambda item: (item[1], item[0].name, sorted(item[0].labels.items())),
        )

    def firing(self) -> list[tuple[Alert, float]]:
        """Alerts firing, with the time they started firing."""
        return sorted(
            (
                (s.alert, s.firing_since)
                for s in self._states.values()
                if s.firing_since is not None
            ),
            key=lambda item: (item[1], item[0].name, sorted(item[0].labels.items())),
        )

    def seed_firing(self, alerts: Sequence[tuple[Alert, float]]) -> None:
        """Mark alerts as firing since the given times (state from before the engine existed:
        the alert manager's episodes). Alerts of unknown rules are ignored."""
        names = {r.name for r in self.rules}
        for alert, since in alerts:
            if alert.name in names and alert.fingerprint not in self._states:
                self._states[alert.fingerprint] = _State(
                    alert, active_since=since, firing_since=since
                )

    # --- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The state, JSON-ready (the rules are configuration, not state)."""
        return {
            "version": STATE_VERSION,
            "alerts": [self._states[fp].to_dict() for fp in sorted(self._states)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rules: Sequence[RuleSpec]) -> RuleEngine:
        """Restore the state of :meth:`to_dict` under ``rules`` (which may have new durations
        or thresholds: a restart with a new configuration keeps pending and firing alerts).

        >>> rule = RuleSpec("Down", "critical", "down", lambda s, p, n: [({}, 1.0)],
        ...                 for_seconds=60)
        >>> engine = RuleEngine([rule])
        >>> engine.evaluate(MetricSnapshot(), now=0.0)
        []
        >>> back = RuleEngine.from_dict(engine.to_dict(), [rule])  # a restart, pending kept
        >>> [a.name for a in back.evaluate(MetricSnapshot(), now=60.0)]
        ['Down']
        """
        version = data.get("version")
        if version != STATE_VERSION:
            raise ConfigurationError(
                f"rule engine state version must be {STATE_VERSION}, got {version!r}"
            )
        engine = cls(rules)
        names = {r.name for r in rules}
        for item in data.get("alerts") or []:
            state = _State.from_dict(item)
            if state.alert.name in names:
                engine._states[state.alert.fingerprint] = state
        return engine
