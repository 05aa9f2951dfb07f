"""HDDM_A and HDDM_W: drift detection with Hoeffding's and McDiarmid's bounds (river's).

Both tests of the paper live here, under river's names ``HDDMA`` and ``HDDMW``.
"""

from __future__ import annotations

from typing import Any

from river.drift import binary as river_binary

from driftline.drift.base import Direction, RiverDetector, check_choice, check_real
from driftline.errors import DataError

__all__ = ["HDDMA", "HDDMW"]

# river leaves these constructors unannotated.
_RiverHDDMA: Any = river_binary.HDDMA
_RiverHDDMW: Any = river_binary.HDDMW


def _check_bit(name: str, x: float) -> None:
    if x not in (0, 1):
        raise DataError(f"{name} takes error bits (0 or 1); got {x!r}")


class HDDMA(RiverDetector):
    """HDDM_A: moving averages compared with Hoeffding's bound.

    Fed error bits, the test compares the mean since the start with the mean up to the cut
    point where the error rate looked lowest, and declares a drift (or a warning) when the
    difference exceeds Hoeffding's bound at ``drift_confidence`` (``warning_confidence``).
    One-sided by default: only increases of the error rate. The algorithm is river's
    (``river.drift.binary.HDDMA``); this wrapper adds :attr:`direction`.

    Parameters
    ----------
    drift_confidence
        Significance of a drift, in (0, 1).
    warning_confidence
        Significance of a warning, in [drift_confidence, 1).
    two_sided_test
        Also detect decreases.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.drift import HDDMA
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(1000) < 0.3].astype(int)
    >>> hddm = HDDMA()
    >>> for i, x in enumerate(errors):
    ...     hddm.update(x)
    ...     if hddm.drift_detected:
    ...         print(i, hddm.direction)
    2071 up

    References
    ----------
    Isvani Frías-Blanco, José del Campo-Ávila, Gonzalo Ramos-Jiménez, Rafael Morales-Bueno,
    Agustín Ortiz-Díaz and Yailé Caballero-Mota. Online and non-parametric drift detection
    methods based on Hoeffding's bounds. IEEE TKDE 27(3), 810-823, 2015.
    """

    def __init__(
        self,
        *,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        self.drift_confidence = check_real(
            "drift_confidence", drift_confidence, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.warning_confidence = check_real(
            "warning_confidence",
            warning_confidence,
            low=self.drift_confidence,
            high=1.0,
            high_open=True,
        )
        check_choice("two_sided_test", two_sided_test, (False, True))
        self.two_sided_test = two_sided_test
        super().__init__()

    def _build(self) -> Any:
        return _RiverHDDMA(
            drift_confidence=self.drift_confidence,
            warning_confidence=self.warning_confidence,
            two_sided_test=self.two_sided_test,
        )

    def update(self, x: float) -> None:
        """Take one error bit: 1 if the prediction was wrong, 0 if right."""
        _check_bit("HDDMA", x)
        self._detector.update(x)

    @property
    def warning_detected(self) -> bool:
        """Whether the last update is in the warning zone."""
        return bool(self._detector.warning_detected)

    @property
    def direction(self) -> Direction | None:
        """``"up"`` or ``"down"`` after an update that detected a drift, else ``None``."""
        if not self._detector.drift_detected:
            return None
        if not self.two_sided_test:
            return "up"
        return "up" if self._detector._mean_incr(self.drift_confidence) else "down"


class HDDMW(RiverDetector):
    """HDDM_W: exponentially weighted moving averages compared with McDiarmid's bound.

    Like :class:`HDDMA` but the means are exponentially weighted with weight ``lambda_val`` on
    the newest bit, which reacts faster to abrupt changes. The algorithm is river's
    (``river.drift.binary.HDDMW``); this wrapper adds :attr:`direction`.

    Parameters
    ----------
    drift_confidence
        Significance of a drift, in (0, 1).
    warning_confidence
        Significance of a warning, in [drift_confidence, 1).
    lambda_val
        Weight of the newest bit in the moving averages, in (0, 1].
    two_sided_test
        Also detect decreases.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.drift import HDDMW
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(1000) < 0.3].astype(int)
    >>> hddm = HDDMW()
    >>> for i, x in enumerate(errors):
    ...     hddm.update(x)
    ...     if hddm.drift_detected:
    ...         print(i, hddm.direction)
    2075 up

    References
    ----------
    Isvani Frías-Blanco, José del Campo-Ávila, Gonzalo Ramos-Jiménez, Rafael Morales-Bueno,
    Agustín Ortiz-Díaz and Yailé Caballero-Mota. Online and non-parametric drift detection
    methods based on Hoeffding's bounds. IEEE TKDE 27(3), 810-823, 2015.
    """

    def __init__(
        self,
        *,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
    ) -> None:
        self.drift_confidence = check_real(
            "drift_confidence", drift_confidence, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.warning_confidence = check_real(
            "warning_confidence",
            warning_confidence,
            low=self.drift_confidence,
            high=1.0,
            high_open=True,
        )
        self.lambda_val = check_real("lambda_val", lambda_val, low=0.0, high=1.0, low_open=True)
        check_choice("two_sided_test", two_sided_test, (False, True))
        self.two_sided_test = two_sided_test
        super().__init__()

    def _build(self) -> Any:
        return _RiverHDDMW(
            drift_confidence=self.drift_confidence,
            warning_confidence=self.warning_confidence,
            lambda_val=self.lambda_val,
            two_sided_test=self.two_sided_test,
        )

    def update(self, x: float) -> None:
        """Take one error bit: 1 if the prediction was wrong, 0 if right."""
        _check_bit("HDDMW", x)
        self._detector.update(x)

    @property
    def warning_detected(self) -> bool:
        """Whether the last update is in the warning zone."""
        return bool(self._detector.warning_detected)

    @property
    def direction(self) -> Direction | None:
        """``"up"`` or ``"down"`` after an update that detected a drift, else ``None``."""
        if not self._detector.drift_detected:
            return None
        if not self.two_sided_test:
            return "up"
        return "up" if self._detector._detect_mean_incr(self.drift_confidence) else "down"
