"""Page-Hinkley test (river's implementation, with the direction of the change)."""

from __future__ import annotations

from typing import Any

from river import drift as river_drift

from driftline.drift.base import (
    Direction,
    RiverDetector,
    check_choice,
    check_integer,
    check_real,
)

__all__ = ["PageHinkley"]

MODES = ("up", "down", "both")


class PageHinkley(RiverDetector):
    """Page-Hinkley: a cumulative sum of deviations from the running mean, with a threshold.

    Each value adds its deviation from the running (fading) mean, less a tolerance ``delta``,
    to a cumulative sum; a drift is declared when the sum rises more than ``threshold`` above
    its minimum (an increase) or falls that far below its maximum (a decrease). The algorithm
    is river's (``river.drift.PageHinkley``); this wrapper adds :attr:`direction`. On an error
    stream use ``mode="up"``: only an increase of the error rate is a degradation.

    Parameters
    ----------
    min_instances
        No drift before this many values (>= 1).
    delta
        Tolerated deviation per value (>= 0).
    threshold
        Alarm threshold, lambda (> 0).
    alpha
        Fading factor of the cumulative sums, in (0, 1].
    mode
        ``"up"``, ``"down"`` or ``"both"``: which changes of the mean are tested.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.drift import PageHinkley
    >>> rng = np.random.default_rng(7)
    >>> stream = np.r_[rng.normal(0.0, 0.5, 1000), rng.normal(-1.0, 0.5, 500)]
    >>> ph = PageHinkley(mode="both")
    >>> for i, x in enumerate(stream):
    ...     ph.update(x)
    ...     if ph.drift_detected:
    ...         print(i, ph.direction)
    1049 down

    References
    ----------
    E. S. Page. Continuous inspection schemes. Biometrika 41(1/2), 100-115, 1954.
    """

    def __init__(
        self,
        *,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        self.min_instances = check_integer("min_instances", min_instances, low=1)
        self.delta = check_real("delta", delta, low=0.0)
        self.threshold = check_real("threshold", threshold, low=0.0, low_open=True)
        self.alpha = check_real("alpha", alpha, low=0.0, high=1.0, low_open=True)
        check_choice("mode", mode, MODES)
        self.mode = mode
        super().__init__()

    def _build(self) -> Any:
        return river_drift.PageHinkley(
            min_instances=self.min_instances,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.alpha,
            mode=self.mode,
        )

    @property
    def direction(self) -> Direction | None:
        """``"up"`` or ``"down"`` after an update that detected a drift, else ``None``."""
        if not self._detector.drift_detected:
            return None
        if self.mode != "both":
            return "up" if self.mode == "up" else "down"
        # river keeps the two one-sided statistics in its own attributes.
        rise = self._detector._sum_increase - self._detector._min_increase
        return "up" if rise > self.threshold else "down"
