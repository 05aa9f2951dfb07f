"""Corrections for testing many features at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from driftline.errors import DataError

__all__ = ["benjamini_hochberg", "bonferroni"]


def _p_values(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise DataError("p-values must lie in [0, 1]")
    return p


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (same order as given).

    Rejecting every hypothesis whose adjusted p-value is below ``alpha`` keeps the expected
    share of false discoveries at most ``alpha`` for independent or positively dependent tests;
    when nothing changed at all, it is also the chance of any alarm.

    Parameters
    ----------
    p_values
        One p-value per hypothesis.

    Example
    -------
    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.20]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.2]

    References
    ----------
    Benjamini and Hochberg (1995), "Controlling the false discovery rate: a practical and
    powerful approach to multiple testing", JRSS B 57(1).
    """
    p = _p_values(p_values)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def bonferroni(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bonferroni adjusted p-values: each multiplied by the number of hypotheses (at most 1).

    Parameters
    ----------
    p_values
        One p-value per hypothesis.

    Example
    -------
    >>> bonferroni([0.01, 0.04, 0.5]).tolist()
    [0.03, 0.12, 1.0]

    References
    ----------
    Dunn (1961), "Multiple comparisons among means", JASA 56(293).
    """
    p = _p_values(p_values)
    return np.minimum(p * len(p), 1.0)
