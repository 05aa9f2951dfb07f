"""KSWIN: Kolmogorov-Smirnov windowing (river's implementation)."""

from __future__ import annotations

from typing import Any

from river import drift as river_drift

from driftline.drift.base import RiverDetector, check_integer, check_real

__all__ = ["KSWIN"]


class KSWIN(RiverDetector):
    """Kolmogorov-Smirnov windowing: the newest values against a sample of older ones.

    A sliding window of ``window_size`` values is kept; its last ``stat_size`` values are
    compared with ``stat_size`` values drawn at random from the rest by a two-sample
    Kolmogorov-Smirnov test, and a drift is declared when the p-value is at most ``alpha``
    (and the statistic above 0.1). It watches the whole distribution, not only the mean, so
    it has no direction. The algorithm is river's (``river.drift.KSWIN``); unlike river the
    seed defaults to 0, so runs repeat.

    Parameters
    ----------
    alpha
        Significance of each test, in (0, 1); the test runs on every update, so keep it small.
    window_size
        Length of the sliding window (>= 2 * stat_size).
    stat_size
        Length of the newest part and of the sample drawn from the older part (>= 1).
    seed
        Seed of the random draw (>= 0).

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.drift import KSWIN
    >>> rng = np.random.default_rng(7)
    >>> stream = np.r_[rng.normal(0.0, 1.0, 500), rng.normal(2.0, 1.0, 200)]
    >>> kswin = KSWIN(alpha=0.0001)
    >>> for i, x in enumerate(stream):
    ...     kswin.update(x)
    ...     if kswin.drift_detected:
    ...         print(i)
    517

    References
    ----------
    Christoph Raab, Moritz Heusinger and Frank-Michael Schleif. Reactive soft prototype
    computing for concept drift streams. Neurocomputing 416, 340-351, 2020.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.005,
        window_size: int = 100,
        stat_size: int = 30,
        seed: int = 0,
    ) -> None:
        self.alpha = check_real("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
        self.stat_size = check_integer("stat_size", stat_size, low=1)
        self.window_size = check_integer("window_size", window_size, low=2 * self.stat_size)
        self.seed = check_integer("seed", seed, low=0)
        super().__init__()

    def _build(self) -> Any:
        return river_drift.KSWIN(
            alpha=self.alpha,
            window_size=self.window_size,
            stat_size=self.stat_size,
            seed=self.seed,
        )
