"""ADWIN: adaptive windowing (river's implementation, with the direction of the change)."""

from __future__ import annotations

from typing import Any

from river import drift as river_drift

from driftline.drift.base import Direction, RiverDetector, check_integer, check_real

__all__ = ["ADWIN"]

# river leaves this constructor unannotated.
_RiverADWIN: Any = river_drift.ADWIN


class ADWIN(RiverDetector):
    """ADaptive WINdowing: a window that shrinks whenever its two halves differ in mean.

    ADWIN keeps the longest recent window whose every split into an older and a newer part has
    means within a Hoeffding-style bound at confidence ``delta``; when a split breaks the
    bound, the older part is dropped and a drift is reported. The algorithm is river's
    (``river.drift.ADWIN``). This wrapper adds :attr:`direction`: the mean of the part that
    was dropped compared with the mean of the part that was kept, which on an error stream
    tells a degradation (``"up"``) from an improvement (``"down"``).

    Parameters
    ----------
    delta
        Confidence of the cut, in (0, 1); smaller means fewer false alarms and later ones.
    clock
        Check for a cut every ``clock`` updates (>= 1).
    max_buckets
        Buckets of each size kept before two are merged (>= 2); the memory/precision knob.
    min_window_length
        Neither part of a split may be shorter than this (>= 1).
    grace_period
        No cut is tried before this many values have arrived (>= 0).

    Examples
    --------
    An error rate that rises from 10% to 30% after 2,000 predictions:

    >>> import numpy as np
    >>> from driftline.drift import ADWIN
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(1000) < 0.3].astype(float)
    >>> adwin = ADWIN()
    >>> for i, x in enumerate(errors):
    ...     adwin.update(x)
    ...     if adwin.drift_detected:
    ...         print(i, adwin.direction, adwin.width)
    2079 up 1312

    The drift is reported 79 values after the change; the window kept after the cut still
    starts before the change (cuts fall on bucket boundaries).

    References
    ----------
    Albert Bifet and Ricard Gavaldà. Learning from time-changing data with adaptive windowing.
    Proceedings of the 2007 SIAM International Conference on Data Mining, 443-448.
    """

    def __init__(
        self,
        *,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
        self.clock = check_integer("clock", clock, low=1)
        self.max_buckets = check_integer("max_buckets", max_buckets, low=2)
        self.min_window_length = check_integer("min_window_length", min_window_length, low=1)
        self.grace_period = check_integer("grace_period", grace_period, low=0)
        self._direction: Direction | None = None
        super().__init__()

    def _build(self) -> Any:
        return _RiverADWIN(
            delta=self.delta,
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )

    def update(self, x: float) -> None:
        """Add one value; after a cut, :attr:`direction` says which way the mean moved."""
        detector = self._detector
        if detector.drift_detected:  # river starts afresh inside this update
            width, total = 0.0, 0.0
        else:
            width, total = float(detector.width), float(detector.total)
        detector.update(x)
        if not detector.drift_detected:
            self._direction = None
            return
        kept_width, kept_total = float(detector.width), float(detector.total)
        dropped_width = width + 1.0 - kept_width
        dropped_mean = (total + float(x) - kept_total) / max(dropped_width, 1.0)
        kept_mean = kept_total / max(kept_width, 1.0)
        self._direction = "up" if kept_mean > dropped_mean else "down"

    @property
    def direction(self) -> Direction | None:
        """``"up"`` if the kept (recent) part has the higher mean, ``"down"`` if lower."""
        return self._direction

    @property
    def width(self) -> int:
        """Length of the current window (after a drift: the part that was kept)."""
        return int(self._detector.width)

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return float(self._detector.estimation)
