"""The host watcher: learn what normal looks like on this machine, score every observation,
and learn again when normal changes.

:class:`HostWatcher` is the loop without its I/O: it takes observations from a sampler (a
:class:`~driftline.anomaly.host.HostSampler`, or anything with ``sample()``), and returns one
:class:`WatchEvent` per observation. Training goes through
:func:`~driftline.anomaly.detector_training.train_anomaly_bundle`, as ``driftline anomaly
train`` does;
registering a trained model, exporting metrics and publishing to a stream are callbacks the
caller passes in (``driftline host watch`` wires them to MLflow, Prometheus and Redis).

Phases:

1. **Baseline.** Without a model, the first ``baseline_rows`` observations are collected, then
   a detector (an Isolation Forest by default) is fitted on them and handed to ``register``.
2. **Scoring.** Every observation gets an anomaly score and a flag.
3. **Drift checks.** Scored observations are cut into consecutive windows of
   ``drift_window``. Each full window is profiled on the model's reference bins and compared
   with the training rows by :func:`~driftline.drift.decision.decide_drift` (significance after
   Benjamini-Hochberg AND effect size). :func:`decide_rebaseline` retrains when
   ``confirmations`` windows in a row drifted critically. Windows do not overlap, so an
   anomaly shorter than a window (a CPU spike, a burst of traffic) touches at most two of them:
   it is flagged, and it never becomes normal; a change that lasts ``confirmations`` windows
   does. The detector is then fitted on those windows and registered as a new version.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

import numpy as np
import pandas as pd

from driftline.anomaly.detector_training import train_anomaly_bundle
from driftline.drift.decision import DatasetDrift, DriftPolicy, Severity, decide_drift
from driftline.errors import ConfigurationError, DataError
from driftline.models.bundle import ModelBundle
from driftline.monitoring.reference import reference_for
from driftline.profiles import DatasetProfile

__all__ = [
    "HOST_DRIFT_POLICY",
    "MIN_BASELINE_ROWS",
    "HostWatcher",
    "Phase",
    "RebaselineDecision",
    "Register",
    "Sampler",
    "Trained",
    "WatchEvent",
    "WatchPolicy",
    "decide_rebaseline",
]

#: Fewest observations a baseline may have.
MIN_BASELINE_ROWS: Final = 10
#: Host metrics are autocorrelated and move by small amounts all the time, so the effect sizes
#: that count are larger than the service's: a mean shift of half a reference standard
#: deviation warns, a whole one is critical.
HOST_DRIFT_POLICY: Final = DriftPolicy(numeric_warning=0.5, numeric_critical=1.0, min_samples=30)

Phase = Literal["baseline", "scoring"]


class Sampler(Protocol):
    """Anything that returns one observation (metric name to value) per call.

    A sampler that averages over the time since its previous call may also have a
    ``reset()`` method: the watcher calls it after training, so that the next observation does
    not average in the watcher's own work.
    """

    def sample(self) -> Mapping[str, Any]:
        """One observation."""
        ...


def _positive_int(name: str, value: int, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class WatchPolicy:
    """How the watcher learns, checks for drift and retrains. Counts are observations.

    Parameters
    ----------
    baseline_rows
        Observations collected before the first model is trained (at least 10).
    kind
        Detector kind (``iforest``; ``lstm`` needs the extra).
    contamination
        Expected anomaly share, in ``(0, 0.5]``: the detector flags that share of its
        training rows.
    drift_window
        Observations in one drift check (at least 10); checks run on consecutive windows.
    confirmations
        Windows in a row that must drift critically to retrain; the retrained model is fitted
        on those ``confirmations * drift_window`` observations.
    retrain
        Whether lasting drift retrains the model (checks run and are reported either way).
    drift
        The drift decision's thresholds (:data:`HOST_DRIFT_POLICY` by default).
    seed
        Seed of the detector and the profiles.

    Example
    -------
    >>> WatchPolicy(baseline_rows=60, drift_window=120).drift.numeric_critical
    1.0
    >>> WatchPolicy(baseline_rows=3)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: baseline_rows must be an integer >= 10, got 3
    """

    baseline_rows: int = 600
    kind: str = "iforest"
    contamination: float = 0.03
    drift_window: int = 300
    confirmations: int = 3
    retrain: bool = True
    drift: DriftPolicy = field(default_factory=lambda: HOST_DRIFT_POLICY)
    seed: int = 0

    def __post_init__(self) -> None:
        _positive_int("baseline_rows", self.baseline_rows, MIN_BASELINE_ROWS)
        _positive_int("drift_window", self.drift_window, MIN_BASELINE_ROWS)
        _positive_int("confirmations", self.confirmations)
        if not 0.0 < self.contamination <= 0.5:
            raise ConfigurationError(
                f"contamination must be in (0, 0.5], got {self.contamination!r}"
            )


@dataclass(frozen=True)
class RebaselineDecision:
    """Whether a drift check retrains the model, the critical streak after it, and why."""

    retrain: bool
    severity: Severity
    streak: int
    reasons: tuple[str, ...]


def decide_rebaseline(
    drift: DatasetDrift, *, streak: int, policy: WatchPolicy
) -> RebaselineDecision:
    """Retrain when this window is the ``confirmations``-th critical one in a row.

    ``streak`` is the number of critical windows in a row before this one. Anything but a
    critical verdict (including too little data) resets it.

    Example
    -------
    >>> from driftline.drift.decision import DatasetDrift
    >>> def check(severity):
    ...     return DatasetDrift(severity, (), 5, 1, 0.2, 600, 600, 0.05, (f"{severity} drift",))
    >>> policy = WatchPolicy(confirmations=2)
    >>> first = decide_rebaseline(check("critical"), streak=0, policy=policy)
    >>> first.retrain, first.streak, first.reasons[-1]
    (False, 1, 'critical drift in 1 of the 2 windows in a row needed to retrain')
    >>> second = decide_rebaseline(check("critical"), streak=first.streak, policy=policy)
    >>> second.retrain, second.reasons[-1]
    (True, "critical drift in 2 windows in a row: the machine's normal changed, retraining")
    >>> decide_rebaseline(check("warning"), streak=1, policy=policy).streak
    0
    """
    reasons = list(drift.reasons)
    if drift.severity != "critical":
        reasons.append(f"{drift.severity}: the model stays")
        return RebaselineDecision(False, drift.severity, 0, tuple(reasons))
    now = streak + 1
    if now < policy.confirmations:
        reasons.append(
            f"critical drift in {now} of the {policy.confirmations} windows in a row "
            "needed to retrain"
        )
        return RebaselineDecision(False, "critical", now, tuple(reasons))
    if not policy.retrain:
        reasons.append(f"critical drift in {now} windows in a row; retraining is off")
        return RebaselineDecision(False, "critical", now, tuple(reasons))
    reasons.append(
        f"critical drift in {now} windows in a row: the machine's normal changed, retraining"
    )
    return RebaselineDecision(True, "critical", now, tuple(reasons))


@dataclass(frozen=True)
class Trained:
    """A model the watcher just trained: on which rows, why, and the version it got."""

    bundle: ModelBundle
    rows: int
    reason: str
    version: int | None
    replaced: int | None
    drift: DatasetDrift | None = None


#: Called with a freshly trained model; returns its registered version (None if unregistered).
Register = Callable[[Trained], int | None]


@dataclass(frozen=True)
class WatchEvent:
    """What happened at one observation.

    ``score``, ``flagged`` and ``threshold`` are None while the baseline is being learnt;
    ``drift`` and ``decision`` are set when a drift check ran; ``trained`` when a model was
    trained (at the end of the baseline, or by a retrain).
    """

    index: int
    observation: Mapping[str, Any]
    phase: Phase
    score: float | None = None
    flagged: bool | None = None
    threshold: float | None = None
    model_version: int | None = None
    baseline_progress: tuple[int, int] | None = None
    drift: DatasetDrift | None = None
    decision: RebaselineDecision | None = None
    trained: Trained | None = None


def _history_size(model: Any) -> int:
    """Observations a detector looks at together (its window, or one row)."""
    window = getattr(model, "window", 1)
    return window if isinstance(window, int) and window > 0 else 1


def _threshold(model: Any) -> float | None:
    for name in ("threshold_", "threshold"):
        value = getattr(model, name, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


class HostWatcher:
    """Learn a baseline, score each observation, retrain when the machine's normal changes.

    Parameters
    ----------
    sampler
        Gives one observation per :meth:`step`.
    policy
        Baseline length, detector, drift checks.
    bundle
        A trained anomaly detector to start from (skips the baseline), e.g. the registry's
        champion; None to learn one.
    version
        The registered version of ``bundle``, when it has one.
    register
        Called with every model the watcher trains; returns its version. None keeps models in
        memory only.

    Example
    -------
    >>> class Steady:
    ...     def __init__(self):
    ...         self.rng = np.random.default_rng(0)
    ...     def sample(self):
    ...         return {"cpu_percent": 20 + self.rng.normal(), "memory_percent": 40.0}
    >>> watcher = HostWatcher(Steady(), policy=WatchPolicy(baseline_rows=50, seed=0))
    >>> events = [watcher.step() for _ in range(50)]
    >>> events[0].phase, events[-1].baseline_progress, events[-1].trained.rows
    ('baseline', (50, 50), 50)
    >>> event = watcher.step()
    >>> event.phase, event.flagged
    ('scoring', False)
    """

    def __init__(
        self,
        sampler: Sampler,
        *,
        policy: WatchPolicy | None = None,
        bundle: ModelBundle | None = None,
        version: int | None = None,
        register: Register | None = None,
    ) -> None:
        self.sampler = sampler
        self.policy = policy or WatchPolicy()
        self.register = register
        self.observations = 0
        self._baseline: list[dict[str, Any]] = []
        self._recent: deque[dict[str, Any]] = deque(
            maxlen=self.policy.drift_window * self.policy.confirmations
        )
        self._history: deque[dict[str, Any]] = deque(maxlen=1)
        self._since_model = 0
        self._streak = 0
        self._checks = 0
        self.bundle: ModelBundle | None = None
        self.version: int | None = None
        self._reference: DatasetProfile | None = None
        if bundle is not None:
            self._use(bundle, version)

    def __repr__(self) -> str:
        return (
            f"HostWatcher(policy={self.policy!r}, version={self.version}, "
            f"observations={self.observations})"
        )

    @property
    def phase(self) -> Phase:
        return "baseline" if self.bundle is None else "scoring"

    def _use(self, bundle: ModelBundle, version: int | None) -> None:
        if bundle.schema.task != "anomaly":
            raise DataError(
                f"the host watcher needs an anomaly detector, got a {bundle.schema.task} model"
            )
        self.bundle = bundle
        self.version = version
        self._reference = reference_for(bundle).features
        self._history = deque(maxlen=_history_size(bundle.model))
        self._recent.clear()
        self._since_model = 0
        self._streak = 0

    def _train(
        self, rows: list[dict[str, Any]], reason: str, drift: DatasetDrift | None = None
    ) -> Trained:
        frame = pd.DataFrame(rows)
        bundle = train_anomaly_bundle(
            frame,
            self.policy.kind,
            contamination=self.policy.contamination,
            seed=self.policy.seed,
        )
        bundle.meta["trained_by"] = "host-watch"
        bundle.meta["reason"] = reason
        trained = Trained(bundle, len(frame), reason, None, self.version, drift)
        version = self.register(trained) if self.register is not None else None
        self._use(bundle, version)
        reset = getattr(self.sampler, "reset", None)
        if callable(reset):
            reset()
        return replace(trained, version=version)

    def _score(self) -> tuple[float, bool]:
        assert self.bundle is not None
        frame = self.bundle.schema.to_frame(list(self._history))
        model: Any = self.bundle.model
        score = float(np.asarray(model.score(frame), dtype=np.float64)[-1])
        flagged = bool(np.asarray(model.predict_proba(frame))[-1, 1] > 0.5)
        return score, flagged

    def _check_drift(self) -> DatasetDrift:
        assert self.bundle is not None and self._reference is not None
        self._checks += 1
        window = self._reference.empty_like(seed=self.policy.seed + self._checks)
        rows = list(self._recent)[-self.policy.drift_window :]
        window.add_frame(self.bundle.schema.to_frame(rows))
        return decide_drift(self._reference, window, policy=self.policy.drift)

    def step(self) -> WatchEvent:
        """Take one observation and act on it."""
        observation = dict(self.sampler.sample())
        index = self.observations
        self.observations += 1
        if self.bundle is None:
            self._baseline.append(observation)
            progress = (len(self._baseline), self.policy.baseline_rows)
            trained = None
            if len(self._baseline) >= self.policy.baseline_rows:
                rows, self._baseline = self._baseline, []
                trained = self._train(rows, f"baseline of {len(rows)} observations")
            return WatchEvent(
                index, observation, "baseline", baseline_progress=progress, trained=trained
            )
        self._history.append(observation)
        self._recent.append(observation)
        self._since_model += 1
        score, flagged = self._score()
        event = WatchEvent(
            index,
            observation,
            "scoring",
            score=score,
            flagged=flagged,
            threshold=_threshold(self.bundle.model),
            model_version=self.version,
        )
        if self._since_model % self.policy.drift_window != 0:
            return event
        drift = self._check_drift()
        decision = decide_rebaseline(drift, streak=self._streak, policy=self.policy)
        self._streak = decision.streak
        trained = None
        if decision.retrain:
            drifted = ", ".join(drift.drifted_features) or "the metrics"
            trained = self._train(
                list(self._recent),
                f"retrained on the last {len(self._recent)} observations: critical drift "
                f"in {drifted} for {decision.streak} windows in a row",
                drift,
            )
        return WatchEvent(
            index,
            observation,
            "scoring",
            score=score,
            flagged=flagged,
            threshold=event.threshold,
            model_version=event.model_version,
            drift=drift,
            decision=decision,
            trained=trained,
        )

    def run(
        self,
        *,
        interval: float,
        count: int | None = None,
        duration: float | None = None,
        on_event: Callable[[WatchEvent], None] | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> int:
        """Step every ``interval`` seconds until ``count`` observations, ``duration`` seconds
        or ``stop`` is set; returns the observations taken.

        Ticks are on a fixed schedule; a tick missed while a model trained is skipped, not
        made up (the sampler's rates are per elapsed second, so a late sample is still right).
        """
        if not interval > 0 or math.isinf(interval):
            raise ConfigurationError(f"interval must be a positive number, got {interval}")
        if count is not None and count < 0:
            raise ConfigurationError(f"count must be at least 0, got {count}")
        if duration is not None and not duration > 0:
            raise ConfigurationError(f"duration must be positive, got {duration}")
        event_stop = stop or threading.Event()
        start = clock()
        next_at = start + interval
        taken = 0
        while count is None or taken < count:
            if duration is not None and next_at - start > duration + 1e-9:
                break
            wait = next_at - clock()
            if wait > 0 and event_stop.wait(wait):
                break
            if event_stop.is_set():
                break
            event = self.step()
            taken += 1
            if on_event is not None:
                on_event(event)
            next_at += interval
            if next_at <= clock():
                next_at = clock() + interval
        return taken
