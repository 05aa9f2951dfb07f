"""The vocabulary of the built-in alerting: metric snapshots, rules, alerts and notifications.

Rules read a :class:`MetricSnapshot` -- the values of the service's Prometheus metrics at one
moment -- so the built-in rules and ``deploy/prometheus/alerts.yml`` look at the same numbers.
A rule turns a snapshot into :class:`Alert` values; the :class:`~driftline.alerts.AlertManager`
turns the alerts of successive evaluations into :class:`Notification` values; notifiers send
those. Everything here is pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from prometheus_client.parser import text_string_to_metric_families

from driftline.errors import ConfigurationError

__all__ = [
    "Alert",
    "AlertEvent",
    "Evaluation",
    "Match",
    "MetricHistory",
    "MetricSnapshot",
    "Notification",
    "NotificationKind",
    "RuleSpec",
    "SeriesKey",
    "Severity",
    "fingerprint",
    "severity_rank",
]

Severity = Literal["warning", "critical"]
NotificationKind = Literal["firing", "resolved", "repeat"]
SeriesKey: TypeAlias = tuple[str, frozenset[tuple[str, str]]]
Match: TypeAlias = tuple[dict[str, str], float]
"""What a rule condition finds: the labels of one alert and the value that made it fire."""

SEVERITIES: tuple[Severity, ...] = get_args(Severity)
RESERVED_LABELS = frozenset({"alertname", "severity"})


def severity_rank(severity: str) -> int:
    """Order of severities, for "the highest severity of a group".

    >>> severity_rank("critical") > severity_rank("warning")
    True
    """
    return {"warning": 1, "critical": 2}.get(severity, 0)


def fingerprint(name: str, labels: Mapping[str, str]) -> str:
    """A stable identity of an alert: 16 hex digits of SHA-256 over its name and sorted labels.

    The same name and labels give the same fingerprint in every process and release; label
    order does not matter.

    >>> fingerprint("DriftlineNoChampion", {})
    '80828e2fbbd27e40'
    >>> fingerprint("X", {"a": "1", "b": "2"}) == fingerprint("X", {"b": "2", "a": "1"})
    True
    """
    canonical = json.dumps([name, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """One firing condition, as a rule evaluation found it.

    Parameters
    ----------
    name
        The alert name (Prometheus ``alertname``), e.g. ``DriftlineFeatureDriftCritical``.
    severity
        ``"warning"`` or ``"critical"``.
    labels
        What tells two alerts of one rule apart, from bounded sets only (a feature name, a
        check name; never a request id). ``alertname`` and ``severity`` are reserved.
    summary, description
        One line, and the details, for humans.
    value
        The number that made the rule fire (``None`` when there is none).

    The :attr:`fingerprint` is computed from the name and labels.

    Example
    -------
    >>> a = Alert("DriftlineFeatureDriftCritical", "critical", {"feature": "age"}, "age drifted")
    >>> a.fingerprint
    '45cbd088c172f427'
    >>> a.all_labels
    {'alertname': 'DriftlineFeatureDriftCritical', 'severity': 'critical', 'feature': 'age'}
    >>> Alert("X", "fatal", {}, "")
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: severity must be one of ('warning', 'critical'), \
got 'fatal'
    """

    name: str
    severity: Severity
    labels: dict[str, str]
    summary: str
    description: str = ""
    value: float | None = None
    fingerprint: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError(f"name must be a non-empty string, got {self.name!r}")
        if self.severity not in SEVERITIES:
            raise ConfigurationError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        labels = dict(self.labels)
        for key, val in labels.items():
            if not isinstance(key, str) or not isinstance(val, str):
                raise ConfigurationError(
                    f"labels must map str to str, got {key!r}: {val!r} in alert {self.name}"
                )
            if key in RESERVED_LABELS:
                raise ConfigurationError(
                    f"labels must not contain the reserved {sorted(RESERVED_LABELS)}, "
                    f"got {key!r} in alert {self.name}"
                )
        object.__setattr__(self, "labels", labels)
        if self.value is not None:
            object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "fingerprint", fingerprint(self.name, labels))

    @property
    def all_labels(self) -> dict[str, str]:
        """The labels as Prometheus would show them: ``alertname``, ``severity``, then own."""
        return {"alertname": self.name, "severity": self.severity, **self.labels}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the fingerprint is recomputed on the way back)."""
        value = self.value
        return {
            "name": self.name,
            "severity": self.severity,
            "labels": dict(self.labels),
            "summary": self.summary,
            "description": self.description,
            "value": None if value is None or not math.isfinite(value) else value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            name=str(data["name"]),
            severity=data["severity"],
            labels={str(k): str(v) for k, v in dict(data.get("labels") or {}).items()},
            summary=str(data.get("summary", "")),
            description=str(data.get("description", "")),
            value=None if data.get("value") is None else float(data["value"]),
        )


@dataclass(frozen=True)
class AlertEvent:
    """An alert with its episode: when it started firing and, once resolved, when it ended."""

    alert: Alert
    status: Literal["firing", "resolved"]
    starts_at: float
    ends_at: float | None = None


@dataclass(frozen=True)
class Notification:
    """What the alert manager asks the notifiers to send.

    ``kind`` is ``"firing"`` (alerts that just started; each firing episode appears in exactly
    one), ``"resolved"`` (alerts that stopped; each notified episode gets exactly one) or
    ``"repeat"`` (alerts still firing, re-sent after the repeat interval). All alerts of one
    notification belong to one group (``group_key``, from ``group_labels``).
    ``group_firing`` counts the announced alerts of the group still firing once this
    notification is out (a resolve with ``group_firing == 0`` clears the whole group).
    """

    kind: NotificationKind
    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[AlertEvent, ...]
    created: float
    group_firing: int = 0

    @property
    def status(self) -> Literal["firing", "resolved"]:
        """``"resolved"`` for a resolve notification, else ``"firing"``."""
        return "resolved" if self.kind == "resolved" else "firing"

    @property
    def severity(self) -> Severity:
        """The highest severity among the alerts (what routing looks at)."""
        if any(e.alert.severity == "critical" for e in self.alerts):
            return "critical"
        return "warning"

    @property
    def common_labels(self) -> dict[str, str]:
        """Labels (with ``alertname`` and ``severity``) that every alert shares."""
        if not self.alerts:
            return {}
        first = self.alerts[0].alert.all_labels
        return {
            k: v
            for k, v in first.items()
            if all(e.alert.all_labels.get(k) == v for e in self.alerts[1:])
        }

    @property
    def title(self) -> str:
        """A one-line headline, e.g. ``[FIRING:2] DriftlineFeatureDriftWarning``."""
        names = sorted({e.alert.name for e in self.alerts})
        head = {"firing": "FIRING", "repeat": "FIRING", "resolved": "RESOLVED"}[self.kind]
        return f"[{head}:{len(self.alerts)}] {', '.join(names)}"


def _label_key(labels: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset((str(k), str(v)) for k, v in labels.items())


class MetricSnapshot(Mapping[SeriesKey, float]):
    """The values of a set of Prometheus series at one moment: an immutable mapping from
    ``(sample name, frozenset of label items)`` to a float.

    Names are *sample* names as PromQL sees them: ``driftline_http_requests_total`` for a
    counter, ``..._bucket`` / ``..._count`` / ``..._sum`` for a histogram.

    Example
    -------
    >>> snap = MetricSnapshot.from_exposition('''
    ... # TYPE driftline_feature_drift_severity gauge
    ... driftline_feature_drift_severity{feature="age"} 2.0
    ... driftline_feature_drift_severity{feature="income"} 0.0
    ... driftline_model_loaded 1.0
    ... ''')
    >>> snap.get("driftline_feature_drift_severity", feature="age")
    2.0
    >>> snap.get("driftline_feature_drift_severity", feature="zip") is None
    True
    >>> [(labels["feature"], v) for labels, v in snap.series("driftline_feature_drift_severity")]
    [('age', 2.0), ('income', 0.0)]
    >>> MetricSnapshot.from_dict({"up": 1, 'errors_total{code="500"}': 3}).get("errors_total",
    ...                                                                     code="500")
    3.0
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[SeriesKey, float] | None = None) -> None:
        self._values: dict[SeriesKey, float] = {
            (str(name), frozenset(labels)): float(v) for (name, labels), v in (values or {}).items()
        }

    @classmethod
    def from_exposition(cls, text: str) -> MetricSnapshot:
        """Parse the Prometheus text format (what ``GET /metrics`` answers)."""
        values: dict[SeriesKey, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, _label_key(sample.labels))] = float(sample.value)
        return cls(values)

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> MetricSnapshot:
        """Build from ``{'name{label="value",...}': number}`` -- series in exposition syntax."""
        lines = [f"{key} {float(v)!r}" for key, v in values.items()]
        return cls.from_exposition("\n".join(lines) + "\n")

    def __getitem__(self, key: SeriesKey) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[SeriesKey]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"MetricSnapshot({len(self._values)} series)"

    def get(  # type: ignore[override]
        self, name: str, /, **labels: str
    ) -> float | None:
        """The value of the series with exactly these labels, or ``None``."""
        return self._values.get((name, _label_key(labels)))

    def series(self, name: str, /, **match: str) -> list[tuple[dict[str, str], float]]:
        """Every series of ``name`` whose labels include ``match``, sorted by labels."""
        wanted = set(match.items())
        found = [
            (dict(labels), value)
            for (n, labels), value in self._values.items()
            if n == name and wanted <= labels
        ]
        return sorted(found, key=lambda item: sorted(item[0].items()))

    def names(self) -> list[str]:
        """The distinct sample names, sorted."""
        return sorted({name for name, _ in self._values})


class MetricHistory:
    """Snapshots taken at known times, oldest first: what rules that compare "now" with a
    longer past (traffic against the trailing hour) read.

    Example
    -------
    >>> h = MetricHistory([(0.0, MetricSnapshot.from_dict({"x": 1})),
    ...                    (60.0, MetricSnapshot.from_dict({"x": 5}))])
    >>> h.at(59.0)[0], h.at(60.0)[0], h.at(-1.0) is None, h.span
    (0.0, 60.0, True, 60.0)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[float, MetricSnapshot]] = ()) -> None:
        self._items = sorted(((float(t), s) for t, s in items), key=lambda item: item[0])

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"MetricHistory({len(self._items)} snapshots, span={self.span:g} s)"

    @property
    def span(self) -> float:
        """Seconds between the oldest and the newest snapshot (0 with fewer than two)."""
        return self._items[-1][0] - self._items[0][0] if len(self._items) > 1 else 0.0

    def first(self) -> tuple[float, MetricSnapshot]:
        """The oldest snapshot (``IndexError`` when empty)."""
        return self._items[0]

    def at(self, t: float) -> tuple[float, MetricSnapshot] | None:
        """The newest snapshot taken at or before ``t`` (``None`` if all are newer)."""
        found = None
        for item in self._items:
            if item[0] > t:
                break
            found = item
        return found


@dataclass(frozen=True)
class Evaluation:
    """What a rule condition found in one snapshot, when a plain list of matches is not enough.

    ``firing`` are the alerts past the firing threshold. ``holding`` are past the *resolve*
    threshold only (the hysteresis band): an alert already pending or firing keeps its state,
    none starts. ``known=False`` says the condition cannot judge now (no report exported yet,
    no earlier snapshot, too few requests): every alert of the rule keeps its state, pending
    or firing -- missing data is not a recovery.
    """

    firing: tuple[Match, ...] = ()
    holding: tuple[Match, ...] = ()
    known: bool = True


UNKNOWN = Evaluation(known=False)
"""The condition cannot judge this snapshot."""

Condition: TypeAlias = Callable[..., "list[Match] | Evaluation"]
"""``condition(snapshot, previous, now[, history=...]) -> matches or Evaluation``."""


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


@dataclass(frozen=True)
class RuleSpec:
    """One alerting rule.

    Parameters
    ----------
    name
        The alert name; matches the ``alert:`` of the Prometheus rule it mirrors.
    severity
        Severity of every alert the rule raises.
    summary, description
        Templates filled with the alert's labels and ``value`` (``str.format`` syntax, e.g.
        ``"feature {feature} drifted ({value:.2f})"``); an unknown name becomes ``?``.
    condition
        ``condition(snapshot, previous, now) -> [(labels, value), ...]``, a pure function: one
        entry per alert that should be firing, or an :class:`Evaluation` (hysteresis band,
        "cannot judge"). ``previous`` is the snapshot at the start of the rate window
        (``None`` when there is none), ``now`` the evaluation time in UNIX seconds. With
        ``uses_history`` it is also called with ``history=`` (a :class:`MetricHistory`).
    for_seconds
        Prometheus's ``for``: an alert fires only once its condition has held (or stayed in
        the hysteresis band) for this long; until then it is *pending* (default 0), in
        [0, inf).
    keep_firing_for_seconds
        Prometheus's ``keep_firing_for``: a firing alert resolves only once its condition has
        been clear for this long (default 0), in [0, inf).

    Example
    -------
    >>> rule = RuleSpec(
    ...     "DriftlineNoChampion", "critical", "no champion loaded",
    ...     condition=lambda snap, prev, now: (
    ...         [({}, 0.0)] if snap.get("driftline_model_loaded") == 0 else []),
    ... )
    >>> [a.summary for a in rule.evaluate(MetricSnapshot.from_dict({"driftline_model_loaded": 0}))]
    ['no champion loaded']
    >>> RuleSpec("X", "warning", "x", rule.condition, for_seconds=-1)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: for_seconds must be in [0, inf), got -1
    """

    name: str
    severity: Severity
    summary: str
    condition: Condition = field(repr=False)
    description: str = ""
    for_seconds: float = 0.0
    keep_firing_for_seconds: float = 0.0
    uses_history: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError(f"name must be a non-empty string, got {self.name!r}")
        if self.severity not in SEVERITIES:
            raise ConfigurationError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        for key in ("for_seconds", "keep_firing_for_seconds"):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigurationError(f"{key} must be in [0, inf), got {value!r}")

    def _alert(self, labels: dict[str, str], value: float) -> Alert:
        fill = _Blank(labels)
        fill["value"] = value
        return Alert(
            name=self.name,
            severity=self.severity,
            labels=labels,
            summary=self.summary.format_map(fill),
            description=self.description.format_map(fill),
            value=value,
        )

    def judge(
        self,
        snapshot: MetricSnapshot,
        *,
        previous: MetricSnapshot | None = None,
        now: float | None = None,
        history: MetricHistory | None = None,
    ) -> tuple[list[Alert], list[Alert], bool]:
        """``(firing, holding, known)``: the condition's :class:`Evaluation` as alerts."""
        if self.uses_history:
            found = self.condition(snapshot, previous, now, history=history)
        else:
            found = self.condition(snapshot, previous, now)
        if not isinstance(found, Evaluation):
            found = Evaluation(firing=tuple(found))
        return (
            [self._alert(labels, value) for labels, value in found.firing],
            [self._alert(labels, value) for labels, value in found.holding],
            found.known,
        )

    def evaluate(
        self,
        snapshot: MetricSnapshot,
        *,
        previous: MetricSnapshot | None = None,
        now: float | None = None,
        history: MetricHistory | None = None,
    ) -> list[Alert]:
        """The alerts this rule finds past its firing threshold in ``snapshot`` (no state: no
        ``for``, no hysteresis; see :class:`~driftline.alerts.RuleEngine` for those)."""
        firing, _, _ = self.judge(snapshot, previous=previous, now=now, history=history)
        return firing
