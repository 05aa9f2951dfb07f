"""The alert manager: from the alerts of successive rule evaluations to notifications.

A state machine, fed once per evaluation with every alert firing now and the time:

* **deduplication** -- an alert that keeps firing is sent once, then again only every
  ``repeat_interval`` (a ``"repeat"`` notification);
* **grouping** -- alerts with the same values of the ``group_by`` labels form a group; new
  alerts of a group that start within ``group_wait`` of the first go out as one ``"firing"``
  notification. With the default ``group_wait=0`` the alerts of one evaluation are grouped
  and sent at once; a larger value also gathers alerts of later evaluations (those due are
  sent by the first evaluation at or after the deadline). An alert that stops firing before
  its group was sent is dropped unannounced;
* **resolve notifications** -- an alert that was announced and is no longer firing goes out
  once in a ``"resolved"`` notification of its group.

Pure: no I/O and no clock -- time is an argument -- and the state round-trips through
:meth:`AlertManager.to_dict` / :meth:`AlertManager.from_dict`, so it survives restarts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.alerts.model import Alert, AlertEvent, Notification, NotificationKind
from driftline.errors import ConfigurationError

__all__ = ["AlertManager"]

STATE_VERSION = 1


@dataclass
class _Tracked:
    alert: Alert
    starts_at: float
    due: float  # when its group's firing notification is due (while not yet notified)
    notified_at: float | None = None  # last firing or repeat notification

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert.to_dict(),
            "starts_at": self.starts_at,
            "due": self.due,
            "notified_at": self.notified_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Tracked:
        notified = data.get("notified_at")
        return cls(
            alert=Alert.from_dict(data["alert"]),
            starts_at=float(data["starts_at"]),
            due=float(data["due"]),
            notified_at=None if notified is None else float(notified),
        )


def _event_order(event: AlertEvent) -> tuple[float, str, list[tuple[str, str]]]:
    return (event.starts_at, event.alert.name, sorted(event.alert.labels.items()))


class AlertManager:
    """Deduplicate, group and resolve alerts; see the module docstring.

    Parameters
    ----------
    group_by
        Labels whose values form the group key (default ``("alertname",)``). ``alertname``
        and ``severity`` may be used like any alert label; an absent label counts as empty.
        An empty tuple puts every alert in one group.
    group_wait
        Seconds a new group waits for more alerts before its firing notification goes out
        (default 0: the alerts of one evaluation), in [0, inf).
    repeat_interval
        Seconds before an alert still firing is sent again (default 4 h), in (0, inf).

    Example
    -------
    >>> m = AlertManager()
    >>> drift = Alert("DriftlineFeatureDriftWarning", "warning", {"feature": "age"}, "age")
    >>> [(n.kind, n.group_key, len(n.alerts)) for n in m.process([drift], now=0.0)]
    [('firing', 'alertname="DriftlineFeatureDriftWarning"', 1)]
    >>> m.process([drift], now=60.0)  # still firing: deduplicated
    []
    >>> [n.kind for n in m.process([], now=120.0)]
    ['resolved']
    >>> AlertManager(group_wait=-1)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: group_wait must be in [0, inf), got -1
    """

    def __init__(
        self,
        *,
        group_by: Sequence[str] = ("alertname",),
        group_wait: float = 0.0,
        repeat_interval: float = 4 * 3600.0,
    ) -> None:
        if isinstance(group_by, str) or not all(isinstance(g, str) and g for g in group_by):
            raise ConfigurationError(
                f"group_by must be a sequence of label names, got {group_by!r}"
            )
        if len(set(group_by)) != len(group_by):
            raise ConfigurationError(f"group_by must not repeat a label, got {group_by!r}")
        if not (group_wait >= 0 and math.isfinite(group_wait)):
            raise ConfigurationError(f"group_wait must be in [0, inf), got {group_wait!r}")
        if not (repeat_interval > 0 and math.isfinite(repeat_interval)):
            raise ConfigurationError(
                f"repeat_interval must be in (0, inf), got {repeat_interval!r}"
            )
        self.group_by = tuple(group_by)
        self.group_wait = float(group_wait)
        self.repeat_interval = float(repeat_interval)
        self._tracked: dict[str, _Tracked] = {}

    def __repr__(self) -> str:
        return (
            f"AlertManager(group_by={self.group_by!r}, group_wait={self.group_wait!r}, "
            f"repeat_interval={self.repeat_interval!r})"
        )

    # --- grouping ------------------------------------------------------------------------------

    def group_labels(self, alert: Alert) -> dict[str, str]:
        """The ``group_by`` labels of an alert (absent ones empty)."""
        labels = alert.all_labels
        return {name: labels.get(name, "") for name in self.group_by}

    def group_key(self, alert: Alert) -> str:
        """The group an alert belongs to, e.g. ``'alertname="DriftlineNoChampion"'``."""
        return ",".join(f"{k}={json.dumps(v)}" for k, v in self.group_labels(alert).items())

    # --- the state machine ---------------------------------------------------------------------

    def process(self, firing: Iterable[Alert], now: float) -> list[Notification]:
        """Take the alerts firing at ``now`` (every one, not only new ones) and return the
        notifications to send: resolved first, then firing, then repeats, each sorted by group.

        An alert listed twice (same fingerprint) counts once, the last listing winning.
        """
        now = float(now)
        current: dict[str, Alert] = {}
        for alert in firing:
            current[alert.fingerprint] = alert

        resolved: dict[str, list[AlertEvent]] = {}
        for fp in [fp for fp in self._tracked if fp not in current]:
            tracked = self._tracked.pop(fp)
            if tracked.notified_at is not None:
                event = AlertEvent(tracked.alert, "resolved", tracked.starts_at, now)
                resolved.setdefault(self.group_key(tracked.alert), []).append(event)

        for fp, alert in current.items():
            known = self._tracked.get(fp)
            if known is not None:
                known.alert = alert  # newest summary and value
                continue
            key = self.group_key(alert)
            waiting = [
                t.due
                for t in self._tracked.values()
                if t.notified_at is None and self.group_key(t.alert) == key
            ]
            due = min(waiting) if waiting else now + self.group_wait
            self._tracked[fp] = _Tracked(alert=alert, starts_at=now, due=due)

        firing_groups: dict[str, list[_Tracked]] = {}
        for tracked in self._tracked.values():
            if tracked.notified_at is None:
                firing_groups.setdefault(self.group_key(tracked.alert), []).append(tracked)
        firing_out: dict[str, list[AlertEvent]] = {}
        for key, members in firing_groups.items():
            if min(t.due for t in members) <= now:
                for t in members:
                    t.notified_at = now
                firing_out[key] = [AlertEvent(t.alert, "firing", t.starts_at) for t in members]

        repeat_out: dict[str, list[AlertEvent]] = {}
        for tracked in self._tracked.values():
            last = tracked.notified_at
            if last is not None and now - last >= self.repeat_interval:
                tracked.notified_at = now
                key = self.group_key(tracked.alert)
                event = AlertEvent(tracked.alert, "firing", tracked.starts_at)
                repeat_out.setdefault(key, []).append(event)

        announced: dict[str, int] = {}
        for tracked in self._tracked.values():
            if tracked.notified_at is not None:
                key = self.group_key(tracked.alert)
                announced[key] = announced.get(key, 0) + 1
        notifications: list[Notification] = []
        kinds: list[tuple[NotificationKind, dict[str, list[AlertEvent]]]] = [
            ("resolved", resolved),
            ("firing", firing_out),
            ("repeat", repeat_out),
        ]
        for kind, groups in kinds:
            for key in sorted(groups):
                events = sorted(groups[key], key=_event_order)
                notifications.append(
                    Notification(
                        kind=kind,
                        group_key=key,
                        group_labels=self.group_labels(events[0].alert),
                        alerts=tuple(events),
                        created=now,
                        group_firing=announced.get(key, 0),
                    )
                )
        return notifications

    def active(self) -> list[AlertEvent]:
        """Every alert firing now (announced or still waiting for its group), oldest first."""
        return sorted(
            (AlertEvent(t.alert, "firing", t.starts_at) for t in self._tracked.values()),
            key=_event_order,
        )

    # --- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The parameters and the state, JSON-ready."""
        return {
            "version": STATE_VERSION,
            "params": {
                "group_by": list(self.group_by),
                "group_wait": self.group_wait,
                "repeat_interval": self.repeat_interval,
            },
            "alerts": [self._tracked[fp].to_dict() for fp in sorted(self._tracked)],
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        group_by: Sequence[str] | None = None,
        group_wait: float | None = None,
        repeat_interval: float | None = None,
    ) -> AlertManager:
        """Restore a manager from :meth:`to_dict`. Parameters given here replace the saved ones
        (a restart with a new configuration keeps the alert state).

        >>> m = AlertManager(group_wait=30.0)
        >>> _ = m.process([Alert("DriftlineNoChampion", "critical", {}, "none")], now=0.0)
        >>> back = AlertManager.from_dict(m.to_dict(), repeat_interval=600.0)
        >>> back, [e.alert.name for e in back.active()]
        (AlertManager(group_by=('alertname',), group_wait=30.0, repeat_interval=600.0), \
['DriftlineNoChampion'])
        """
        version = data.get("version")
        if version != STATE_VERSION:
            raise ConfigurationError(
                f"alert manager state version must be {STATE_VERSION}, got {version!r}"
            )
        params = dict(data.get("params") or {})
        manager = cls(
            group_by=params.get("group_by", ("alertname",)) if group_by is None else group_by,
            group_wait=params.get("group_wait", 0.0) if group_wait is None else group_wait,
            repeat_interval=(
                params.get("repeat_interval", 4 * 3600.0)
                if repeat_interval is None
                else repeat_interval
            ),
        )
        for item in data.get("alerts") or []:
            tracked = _Tracked.from_dict(item)
            manager._tracked[tracked.alert.fingerprint] = tracked
        return manager
