"""DDM: the drift detection method of Gama et al. (river's implementation)."""

from __future__ import annotations

from typing import Any

from river.drift import binary as river_binary

from driftline.drift.base import Direction, RiverDetector, check_integer, check_real
from driftline.errors import DataError

__all__ = ["DDM"]


class DDM(RiverDetector):
    """Drift Detection Method: the error rate against its best level so far.

    Fed error bits (1 = the prediction was wrong), DDM tracks the running error rate ``p`` and
    its standard deviation ``s`` and remembers where ``p + s`` was lowest. It warns when
    ``p + s`` exceeds that minimum by ``warning_threshold`` standard deviations and declares a
    drift beyond ``drift_threshold``. It only sees increases, so :attr:`direction` is always
    ``"up"`` at a drift. The algorithm is river's (``river.drift.binary.DDM``).

    Parameters
    ----------
    warm_start
        No warning or drift before this many bits (>= 1).
    warning_threshold
        Warning level in standard deviations (> 0).
    drift_threshold
        Drift level in standard deviations (>= warning_threshold).

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.drift import DDM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(1000) < 0.3].astype(int)
    >>> ddm = DDM()
    >>> for i, x in enumerate(errors):
    ...     ddm.update(x)
    ...     if ddm.drift_detected:
    ...         print(i, ddm.direction)
    2226 up

    References
    ----------
    João Gama, Pedro Medas, Gladys Castillo and Pedro Rodrigues. Learning with drift
    detection. SBIA 2004, LNCS 3171, 286-295.
    """

    def __init__(
        self, *, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        self.warm_start = check_integer("warm_start", warm_start, low=1)
        self.warning_threshold = check_real(
            "warning_threshold", warning_threshold, low=0.0, low_open=True
        )
        self.drift_threshold = check_real(
            "drift_threshold", drift_threshold, low=self.warning_threshold
        )
        super().__init__()

    def _build(self) -> Any:
        return river_binary.DDM(
            warm_start=self.warm_start,
            warning_threshold=self.warning_threshold,
            drift_threshold=self.drift_threshold,
        )

    def update(self, x: float) -> None:
        """Take one error bit: 1 if the prediction was wrong, 0 if right."""
        if x not in (0, 1):
            raise DataError(f"DDM takes error bits (0 or 1); got {x!r}")
        self._detector.update(x)

    @property
    def warning_detected(self) -> bool:
        """Whether the last update is in the warning zone."""
        return bool(self._detector.warning_detected)

    @property
    def direction(self) -> Direction | None:
        """Always ``"up"`` after a drift (DDM only detects increases), else ``None``."""
        return "up" if self._detector.drift_detected else None
