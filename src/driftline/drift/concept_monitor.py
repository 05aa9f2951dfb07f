"""Concept drift online: the model's error stream, watched as labels arrive.

Labels come late and one at a time; each one turns a logged prediction into an error bit.
:class:`ConceptDriftMonitor` feeds those bits to two of river's detectors and confirms their
alarms with a trend test before calling a drift, and it keeps the realized accuracy, macro F1
and Cohen's kappa of the recent labelled window. Its whole state is a JSON-safe dict, so a
monitor restarted from the store raises the same future alarms.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from driftline.drift.adwin import ADWIN
from driftline.drift.base import check_choice, check_integer, check_real
from driftline.drift.hddm import HDDMA
from driftline.drift.page_hinkley import PageHinkley
from driftline.errors import DataError

if TYPE_CHECKING:
    # driftline.performance imports driftline.drift.base, so importing it here at module
    # level would be circular when performance is imported first; realized() imports it late.
    from driftline.performance import RealizedMetrics

__all__ = ["ConceptDriftMonitor", "ConceptDriftStatus", "ConceptState", "increase_p_value"]

ConceptState = Literal["stable", "warning", "drift_confirmed"]

#: Shares of the trend buffer tried as the "recent" part by the confirmation test.
RECENT_SHARES = (1 / 8, 1 / 4, 1 / 2)
STATE_FORMAT = 2
#: How often (in labels) the monitor checks whether the error rate has fallen, and the
#: one-sided significance of that check (see ``ConceptDriftMonitor._follow_recovery``).
REANCHOR_EVERY = 100
REANCHOR_MIN_FALL = 0.03
REANCHOR_ALPHA = 1e-6
#: Whether Page-Hinkley and HDDM_A are fed the kept bits when the baseline re-anchors.
REPLAY_ON_REANCHOR = True
#: Shares of the buffer the recovery check tries as the newer part it would keep: the newer
#: half only, except while the learner relearns after a confirmed drift (the first
#: ``buffer_size`` labels, the ``"drift_confirmed"`` state), when the newer 3/4 and 7/8 are
#: tried too if the half shows nothing: a short high-error stretch left at the buffer's start
#: (the tail of the relearning, after ADWIN's downward cut) is then dropped instead of being
#: diluted into "before", where it delayed a second drift (by 2,832 labels in one synthetic
#: recovery stream with the 3,000-bit buffer and the half alone).
REANCHOR_KEEP: tuple[float, ...] = (1 / 2,)
RECOVERY_KEEP: tuple[float, ...] = (1 / 2, 3 / 4, 7 / 8)
#: Share of ``buffer_size`` an unconfirmed warning stays open (counted from when the
#: ``min_samples`` guard lifts). 0.75 rather than 0.5: a gradual rise of a few points on a
#: long baseline often gathers enough evidence only after its first 1,000 labels, and once a
#: warning is dropped the restarted proposers have already taken the risen level as normal.
WARNING_PATIENCE = 0.75


def increase_p_value(before_errors: int, before_n: int, recent_errors: int, recent_n: int) -> float:
    """One-sided p-value of "the recent error rate is higher than before".

    The two-proportion z-test with pooled variance; 1.0 when there is no increase or no
    variance.

    Parameters
    ----------
    before_errors, before_n
        Errors and samples of the older part.
    recent_errors, recent_n
        Errors and samples of the recent part.

    Examples
    --------
    >>> round(increase_p_value(100, 1000, 150, 1000), 5)
    0.00036
    >>> increase_p_value(150, 1000, 100, 1000)
    1.0

    References
    ----------
    Alan Agresti. Categorical Data Analysis, 3rd ed., section 2.4 (Wiley, 2013).
    """
    if before_n <= 0 or recent_n <= 0:
        return 1.0
    p_before, p_recent = before_errors / before_n, recent_errors / recent_n
    if p_recent <= p_before:
        return 1.0
    pooled = (before_errors + recent_errors) / (before_n + recent_n)
    variance = pooled * (1.0 - pooled) * (1.0 / before_n + 1.0 / recent_n)
    if variance <= 0.0:
        return 1.0
    z = (p_recent - p_before) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class ConceptDriftStatus:
    """What the monitor job reports about concept drift."""

    state: ConceptState
    n_seen: int
    n_drifts: int
    n_warnings: int
    n_rejected: int
    n_improvements: int
    last_drift_index: int | None
    error_rate: float | None
    realized: RealizedMetrics | None


class ConceptDriftMonitor:
    """ADWIN, Page-Hinkley and HDDM_A on the error stream, confirmed by a trend buffer.

    Every labelled prediction becomes an error bit (1 = wrong). Two detectors propose a
    change: river's ADWIN (only when the error rate went *up*; a cut downwards is an
    improvement and is counted, never alarmed) and river's Page-Hinkley in ``mode="up"``.
    A proposal opens a *warning*. While it is open, every update asks the trend buffer (the
    last ``buffer_size`` bits) whether the recent error rate is significantly *higher* than
    before: the recent part is the last 1/8, 1/4 or 1/2 of the buffer; "before" is the rest
    of the buffer plus the counts of every bit that has left it since the last drift (the
    long-run baseline, two integers). One-sided two-proportion z-tests, Bonferroni-corrected
    over the three splits, at level ``alpha``, and an increase of at least ``min_increase``
    (significance and effect size). Nothing is confirmed before ``min_samples`` bits are in
    the buffer. A warning not confirmed within ``0.75 * buffer_size`` bits (counted from when
    the guard lifts, if later; 2,250 bits by default) is dropped as rejected; an improvement
    found by ADWIN drops it too.

    On confirmation ``drift_detected`` is true for that update, the sample index is recorded,
    and the detectors and the buffer start afresh so the new regime becomes the baseline;
    :attr:`state` stays ``"drift_confirmed"`` until the buffer has refilled with
    ``buffer_size`` bits of it.

    Realized accuracy, macro F1 and Cohen's kappa are kept over the last ``window`` labelled
    pairs.

    Parameters
    ----------
    delta
        ADWIN's confidence, in (0, 1).
    ph_threshold
        Page-Hinkley's threshold (> 0).
    ph_delta
        Page-Hinkley's tolerated deviation per bit (>= 0).
    buffer_size
        Length of the trend buffer (>= 16). 3,000 rather than 2,000 (longer "recent" parts
        of 375, 750 and 1,500 bits, a longer baseline, warnings open 2,250 bits): on the
        real-learner tuning seeds 95.7 -> 96.9 % detected and 0.22 -> 0.18 false alarms per
        10k, mean delay 210 -> 250; on the reported seeds 94.6 % either way.
    alpha
        Family-wise significance of the confirmation test, in (0, 1).
    min_increase
        Smallest increase of the error rate worth a drift, in [0, 1).
    min_samples
        Bits needed in the buffer before anything is confirmed, in [16, buffer_size].
    window
        Labelled pairs the realized metrics cover (>= 1).
    hddm
        Let river's HDDM_A (one-sided, Hoeffding's bound) propose changes too. On the
        real-learner benchmark it adds drifts the other two miss (93.8 -> 94.6 % detected) at
        the same false-alarm rate, for about 11 microseconds a label.
    hddm_confidence
        HDDM_A's drift confidence, in (0, 1).
    reanchor
        Move the baseline to the recovered level when the error rate falls: on an ADWIN
        downward cut, and when the newer half of the buffer is 3 points better than the
        older half at p < 1e-6 (checked every 100 labels; in the first ``buffer_size`` labels
        after a confirmed drift, when the learner relearns, the newer 3/4 and 7/8 are tried
        too if the half shows nothing, so a short worse stretch at the buffer's start is
        dropped). After a drift a learner relearns; without this the relearning stretch
        inflates "before" and hides a second drift (with the 3,000-bit buffer and the half
        alone, one synthetic second drift during recovery was confirmed 2,832 labels late).
        Page-Hinkley and HDDM_A restart on the kept bits (replayed into them), so a rise
        that follows the re-anchor at once is measured from the recovered level.
    local
        Also test the recent part against the part of equal length just before it (more
        tests under the Bonferroni correction; measured to cost more than it finds, so off).

    The defaults (Page-Hinkley threshold 25, minimum increase 0.005, alpha 0.001, a 3,000-bit
    buffer, HDDM_A and re-anchoring on, warnings open for 0.75 of a buffer) were chosen on
    ``benchmarks/concept_learners.py`` -- the last round on its tuning seeds 2-4, never on
    the reported seeds 0 and 1 -- and checked on the synthetic cases of
    ``benchmarks/detection_concept.py``; the README gives the figures and what was tried.

    Examples
    --------
    A classifier that is right 90% of the time, then 75%, after 5,000 labels:

    >>> import numpy as np
    >>> from driftline.drift import ConceptDriftMonitor
    >>> rng = np.random.default_rng(3)
    >>> y_true = rng.integers(0, 2, 6500)
    >>> wrong = np.r_[rng.random(5000) < 0.10, rng.random(1500) < 0.25]
    >>> y_pred = np.where(wrong, 1 - y_true, y_true)
    >>> monitor = ConceptDriftMonitor()
    >>> monitor.update_many(y_true, y_pred)
    [5139]
    >>> status = monitor.status()
    >>> status.state, status.n_drifts, round(status.realized.accuracy, 3)
    ('drift_confirmed', 1, 0.755)

    References
    ----------
    Albert Bifet and Ricard Gavaldà. Learning from time-changing data with adaptive
    windowing. SIAM SDM 2007, 443-448. E. S. Page. Continuous inspection schemes.
    Biometrika 41(1/2), 100-115, 1954.
    """

    def __init__(
        self,
        *,
        delta: float = 0.002,
        ph_threshold: float = 25.0,
        ph_delta: float = 0.005,
        buffer_size: int = 3000,
        alpha: float = 0.001,
        min_increase: float = 0.005,
        min_samples: int = 500,
        window: int = 1000,
        hddm: bool = True,
        hddm_confidence: float = 0.001,
        reanchor: bool = True,
        local: bool = False,
    ) -> None:
        self.delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
        self.ph_threshold = check_real("ph_threshold", ph_threshold, low=0.0, low_open=True)
        self.ph_delta = check_real("ph_delta", ph_delta, low=0.0)
        self.buffer_size = check_integer("buffer_size", buffer_size, low=16)
        self.alpha = check_real("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
        self.min_increase = check_real(
            "min_increase", min_increase, low=0.0, high=1.0, high_open=True
        )
        self.min_samples = check_integer(
            "min_samples", min_samples, low=16, high=self.buffer_size
        )
        self.window = check_integer("window", window, low=1)
        check_choice("hddm", hddm, (False, True))
        self.hddm = hddm
        self.hddm_confidence = check_real(
            "hddm_confidence", hddm_confidence, low=0.0, high=1.0, low_open=True, high_open=True
        )
        check_choice("reanchor", reanchor, (False, True))
        self.reanchor = reanchor
        check_choice("local", local, (False, True))
        self.local = local
        self.reset()

    def get_params(self) -> dict[str, Any]:
        """The configuration (the constructor's keyword arguments)."""
        return {
            "delta": self.delta,
            "ph_threshold": self.ph_threshold,
            "ph_delta": self.ph_delta,
            "buffer_size": self.buffer_size,
            "alpha": self.alpha,
            "min_increase": self.min_increase,
            "min_samples": self.min_samples,
            "window": self.window,
            "hddm": self.hddm,
            "hddm_confidence": self.hddm_confidence,
            "reanchor": self.reanchor,
            "local": self.local,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"ConceptDriftMonitor({args})"

    def reset(self) -> None:
        """Forget everything: the monitor equals a freshly constructed one."""
        self._adwin = ADWIN(delta=self.delta)
        self._ph = PageHinkley(delta=self.ph_delta, threshold=self.ph_threshold, mode="up")
        self._hddm = HDDMA(
            drift_confidence=self.hddm_confidence, warning_confidence=self.hddm_confidence
        )
        self._buffer: collections.deque[int] = collections.deque(maxlen=self.buffer_size)
        # Running error counts: _counts[j] = errors among the first j bits of the buffer.
        self._counts: collections.deque[int] = collections.deque([0], maxlen=self.buffer_size + 1)
        # The realized-metrics window: each sample's error bit, and its labels when known.
        self._window_errors: collections.deque[int] = collections.deque(maxlen=self.window)
        self._pairs: collections.deque[tuple[Any, Any] | None] = collections.deque(
            maxlen=self.window
        )
        # Bits that have left the buffer since the last reset or drift: the long-run baseline.
        self._history_n = 0
        self._history_errors = 0
        self._drift_detected = False
        self._warning_since: int | None = None  # sample index the open warning started at
        self.n_seen = 0
        self.n_drifts = 0
        self.n_warnings = 0
        self.n_rejected = 0
        self.n_improvements = 0
        self.last_drift_index: int | None = None

    # feeding

    def update(self, y_true: Any, y_pred: Any) -> None:
        """Take one labelled prediction."""
        pair = (_plain(y_true), _plain(y_pred))
        self._step(int(pair[0] != pair[1]), pair)

    def update_error(self, error: int | bool) -> None:
        """Take one error bit (1 = wrong) when only correctness is known.

        Such bits count for the detectors and for the realized accuracy, not for F1 and kappa.
        """
        if error not in (0, 1):
            raise DataError(f"an error bit is 0 or 1; got {error!r}")
        self._step(int(error), None)

    def update_many(
        self, y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray
    ) -> list[int]:
        """Take a batch of labelled predictions; return the sample indices of confirmed drifts."""
        truth, pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
        if truth.shape != pred.shape:
            raise DataError(f"y_true has {truth.size} labels but y_pred has {pred.size}")
        found: list[int] = []
        for t, p in zip(truth.tolist(), pred.tolist(), strict=True):
            self._step(int(t != p), (t, p))
            if self._drift_detected:
                found.append(self.n_seen - 1)
        return found

    def update_errors(self, errors: Sequence[int] | np.ndarray) -> list[int]:
        """Take a batch of error bits; return the sample indices of confirmed drifts."""
        bits = np.asarray(errors).ravel()
        if bits.size and not np.isin(bits, (0, 1)).all():
            raise DataError("error bits are 0 or 1")
        found: list[int] = []
        for bit in bits.tolist():
            self._step(int(bit), None)
            if self._drift_detected:
                found.append(self.n_seen - 1)
        return found

    def _step(self, error: int, pair: tuple[Any, Any] | None) -> None:
        index = self.n_seen
        self.n_seen += 1
        self._drift_detected = False
        self._pairs.append(pair)
        self._window_errors.append(error)
        if len(self._buffer) == self.buffer_size:
            self._history_n += 1
            self._history_errors += self._buffer[0]
        self._buffer.append(error)
        self._counts.append(self._counts[-1] + error)

        self._adwin.update(error)
        self._ph.update(error)
        proposed = self._adwin.drift_detected or self._ph.drift_detected
        if self.hddm:
            self._hddm.update(error)
            proposed = proposed or self._hddm.drift_detected
        if self._adwin.drift_detected and self._adwin.direction == "down":
            self.n_improvements += 1
            if self._warning_since is not None:  # the error rate fell: nothing to confirm
                self._warning_since = None
                self.n_rejected += 1
            if self.reanchor:
                self._reanchor(self._adwin.width)
        elif proposed and self._warning_since is None:
            self._warning_since = index
            self.n_warnings += 1

        if self.reanchor and self._warning_since is None and index % REANCHOR_EVERY == 0:
            self._follow_recovery()
        if self._warning_since is None:
            return
        if self._confirmed():
            self._drift_detected = True
            self.n_drifts += 1
            self.last_drift_index = index
            self._warning_since = None
            self._adwin.reset()
            self._ph.reset()
            self._hddm.reset()
            self._buffer.clear()
            self._counts = collections.deque([0], maxlen=self.buffer_size + 1)
            self._history_n = 0
            self._history_errors = 0
        else:
            # The min_samples guard postpones the verdict: the clock starts once it lifts.
            start = 0 if self.last_drift_index is None else self.last_drift_index + 1
            judged_from = max(self._warning_since, start + self.min_samples - 1)
            if index - judged_from >= int(self.buffer_size * WARNING_PATIENCE):
                self._warning_since = None
                self.n_rejected += 1

    def _follow_recovery(self) -> None:
        """Track the recent best level: when the newer part of the buffer is significantly
        better than the older part (a learner still relearning after a drift), the older part
        and the history stop counting as "before".

        The newer part tried is the newer half; while the learner recovers from a confirmed
        drift (``RECOVERY_KEEP``), also the newer 3/4 and 7/8 when the half shows nothing, so
        a short worse stretch left at the buffer's start is dropped too. Each test at
        ``REANCHOR_ALPHA``; the first that passes (the shortest newer part) is kept."""
        size = len(self._buffer)
        if size < self.min_samples:
            return
        recovering = self.last_drift_index is not None and (
            self.n_seen - 1 - self.last_drift_index < self.buffer_size
        )
        for share in sorted(RECOVERY_KEEP if recovering else REANCHOR_KEEP):
            keep = int(size * share)
            newer = self._counts[-1] - self._counts[-1 - keep]
            older = self._counts[-1 - keep] - self._counts[0]
            n_older = size - keep
            if older / n_older - newer / keep < REANCHOR_MIN_FALL:
                continue
            if increase_p_value(newer, keep, older, n_older) <= REANCHOR_ALPHA:
                self._reanchor(keep)
                return

    def _reanchor(self, keep: int) -> None:
        """The error rate fell (the learner recovered, or the world got easier): the baseline
        becomes the last ``keep`` bits -- the part ADWIN kept after its downward cut -- so
        the relearning stretch before it no longer inflates "before"."""
        keep = min(keep, len(self._buffer))
        self._history_n = 0
        self._history_errors = 0
        bits = list(self._buffer)[len(self._buffer) - keep :]
        self._buffer.clear()
        self._buffer.extend(bits)
        self._counts = collections.deque([0], maxlen=self.buffer_size + 1)
        for bit in bits:
            self._counts.append(self._counts[-1] + bit)
        self._ph.reset()
        self._hddm.reset()
        if REPLAY_ON_REANCHOR:
            # Page-Hinkley and HDDM_A restart from the recovered level, not from nothing:
            # reset bare, they would learn their mean from whatever comes next, and a rise
            # arriving right after a re-anchor would become their baseline unseen.
            for bit in bits:
                self._ph.update(bit)
                if self.hddm:
                    self._hddm.update(bit)

    def _confirmed(self) -> bool:
        size = len(self._buffer)
        if size < self.min_samples:
            return False
        total = self._counts[-1] - self._counts[0]
        splits = [
            k
            for k in sorted({max(1, int(self.buffer_size * share)) for share in RECENT_SHARES})
            if k <= size // 2
        ]
        tests: list[tuple[int, int, int, int]] = []  # (before errors, before n, recent, k)
        for k in splits:
            recent = self._counts[-1] - self._counts[-1 - k]
            tests.append((total - recent + self._history_errors, size - k + self._history_n,
                          recent, k))
            if self.local and size >= 2 * k:
                # The k bits just before: a rise after a falling stretch (a learner still
                # relearning from the last drift) shows against them, not the whole past.
                previous = self._counts[-1 - k] - self._counts[-1 - 2 * k]
                tests.append((previous, k, recent, k))
        for before, before_n, recent, k in tests:
            increase = recent / k - before / before_n
            if increase < self.min_increase:
                continue
            if increase_p_value(before, before_n, recent, k) * len(tests) <= self.alpha:
                return True
        return False

    # reading

    @property
    def drift_detected(self) -> bool:
        """Whether the last update confirmed a drift."""
        return self._drift_detected

    @property
    def state(self) -> ConceptState:
        """``"drift_confirmed"`` until the buffer has refilled after a confirmed drift,
        else ``"warning"`` while a proposal awaits confirmation, else ``"stable"``."""
        if self.last_drift_index is not None and (
            self.n_seen - 1 - self.last_drift_index < self.buffer_size
        ):
            return "drift_confirmed"
        return "warning" if self._warning_since is not None else "stable"

    def realized(self) -> RealizedMetrics | None:
        """Accuracy, macro F1 and kappa over the last ``window`` labelled pairs (None if none).

        Error bits fed without labels count for accuracy only.
        """
        from driftline.performance import RealizedMetrics, realized_metrics  # noqa: PLC0415 — metrics only when asked for

        error_rate = self.error_rate()
        if error_rate is None:
            return None
        accuracy = 1.0 - error_rate
        pairs = [p for p in self._pairs if p is not None]
        if not pairs:
            return RealizedMetrics(
                accuracy=accuracy,
                f1_macro=math.nan,
                cohen_kappa=math.nan,
                roc_auc=None,
                n=len(self._pairs),
            )
        metrics = realized_metrics([t for t, _ in pairs], [p for _, p in pairs])
        return RealizedMetrics(
            accuracy=accuracy,
            f1_macro=metrics.f1_macro,
            cohen_kappa=metrics.cohen_kappa,
            roc_auc=None,
            n=len(self._pairs),
        )

    def error_rate(self) -> float | None:
        """Error rate over the last ``window`` samples (None before the first)."""
        if not self._window_errors:
            return None
        return sum(self._window_errors) / len(self._window_errors)

    def status(self) -> ConceptDriftStatus:
        """A snapshot for reports and dashboards."""
        return ConceptDriftStatus(
            state=self.state,
            n_seen=self.n_seen,
            n_drifts=self.n_drifts,
            n_warnings=self.n_warnings,
            n_rejected=self.n_rejected,
            n_improvements=self.n_improvements,
            last_drift_index=self.last_drift_index,
            error_rate=self.error_rate(),
            realized=self.realized(),
        )

    # persistence

    def to_dict(self) -> dict[str, Any]:
        """Configuration and state as a JSON-safe dict (labels must be JSON scalars)."""
        return {
            "format": STATE_FORMAT,
            "params": self.get_params(),
            "adwin": self._adwin.get_state(),
            "page_hinkley": self._ph.get_state(),
            "hddm_a": self._hddm.get_state(),
            "buffer": "".join(map(str, self._buffer)),
            "history_n": self._history_n,
            "history_errors": self._history_errors,
            "window_errors": "".join(map(str, self._window_errors)),
            "pairs": [None if p is None else [p[0], p[1]] for p in self._pairs],
            "drift_detected": self._drift_detected,
            "warning_since": self._warning_since,
            "n_seen": self.n_seen,
            "n_drifts": self.n_drifts,
            "n_warnings": self.n_warnings,
            "n_rejected": self.n_rejected,
            "n_improvements": self.n_improvements,
            "last_drift_index": self.last_drift_index,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConceptDriftMonitor:
        """Rebuild a monitor from :meth:`to_dict`; it behaves exactly as the original would."""
        if data.get("format") != STATE_FORMAT:
            raise DataError(f"monitor state format {data.get('format')!r} is not {STATE_FORMAT}")
        monitor = cls(**data["params"])
        monitor._adwin.set_state(data["adwin"])
        monitor._ph.set_state(data["page_hinkley"])
        monitor._hddm.set_state(data["hddm_a"])
        for bit in str(data["buffer"]):
            monitor._buffer.append(int(bit))
            monitor._counts.append(monitor._counts[-1] + int(bit))
        monitor._history_n = int(data["history_n"])
        monitor._history_errors = int(data["history_errors"])
        monitor._window_errors.extend(int(bit) for bit in str(data["window_errors"]))
        for pair in data["pairs"]:
            monitor._pairs.append(None if pair is None else (pair[0], pair[1]))
        monitor._drift_detected = bool(data["drift_detected"])
        monitor._warning_since = data["warning_since"]
        monitor.n_seen = int(data["n_seen"])
        monitor.n_drifts = int(data["n_drifts"])
        monitor.n_warnings = int(data["n_warnings"])
        monitor.n_rejected = int(data["n_rejected"])
        monitor.n_improvements = int(data["n_improvements"])
        monitor.last_drift_index = data["last_drift_index"]
        return monitor


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
