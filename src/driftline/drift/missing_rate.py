"""Test for a change in the share of missing values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from driftline.drift.result import TestResult
from driftline.errors import DataError

__all__ = ["missing_rate_test", "missing_rate_test_counts"]


def missing_rate_test_counts(
    reference_missing: int,
    reference_total: int,
    current_missing: int,
    current_total: int,
    *,
    alpha: float = 0.05,
) -> TestResult:
    """Two-proportion test of "same missing rate" from missing and total counts.

    With every expected cell of the 2 x 2 table at least 5 this is the pooled two-proportion
    z-test (the same p-value as Pearson's chi-square without continuity correction); otherwise
    Fisher's exact test, which stays valid when missing values are rare -- the usual case of a
    reference that had none. The statistic is the current minus the reference rate; the effect
    size its absolute value.

    Parameters
    ----------
    reference_missing, reference_total
        Missing values and all values of the reference.
    current_missing, current_total
        The same for the current window.
    alpha
        Significance level: ``drifted`` when ``p_value < alpha``.

    Example
    -------
    >>> r = missing_rate_test_counts(0, 5000, 40, 2000)
    >>> r.statistic, f"{r.p_value:.1e}", r.drifted
    (0.02, '1.1e-23', True)

    References
    ----------
    Agresti (2013), "Categorical data analysis", 3rd ed., sections 3.1 and 3.5 (Fisher's exact
    test).
    """
    for name, value in (
        ("reference_missing", reference_missing),
        ("reference_total", reference_total),
        ("current_missing", current_missing),
        ("current_total", current_total),
    ):
        if value < 0:
            raise DataError(f"{name} must be >= 0, got {value}")
    if reference_missing > reference_total or current_missing > current_total:
        raise DataError("missing counts cannot exceed totals")
    if reference_total == 0 or current_total == 0:
        return TestResult(0.0, 1.0, 0.0, alpha, False, "missing_rate")
    rate_r = reference_missing / reference_total
    rate_c = current_missing / current_total
    diff = rate_c - rate_r
    missing = reference_missing + current_missing
    n = reference_total + current_total
    if missing in (0, n):
        return TestResult(diff, 1.0, abs(diff), alpha, False, "missing_rate")
    pooled = missing / n
    smallest = min(reference_total, current_total) * min(pooled, 1 - pooled)
    if smallest >= 5:
        se = math.sqrt(pooled * (1 - pooled) * (1 / reference_total + 1 / current_total))
        p = float(2 * stats.norm.sf(abs(diff) / se))
    else:
        table = [
            [reference_missing, reference_total - reference_missing],
            [current_missing, current_total - current_missing],
        ]
        p = float(stats.fisher_exact(table).pvalue)
    return TestResult(diff, p, abs(diff), alpha, p < alpha, "missing_rate")


def missing_rate_test(reference: Any, current: Any, *, alpha: float = 0.05) -> TestResult:
    """Test for a change in the missing rate of two raw samples (None, NaN, +-inf are missing).

    See :func:`missing_rate_test_counts`.

    Parameters
    ----------
    reference, current
        The two samples.
    alpha
        Significance level.

    Example
    -------
    >>> r = missing_rate_test([1.0] * 95 + [None] * 5, [1.0] * 80 + [None] * 20)
    >>> round(r.statistic, 2), round(r.p_value, 4), r.drifted
    (0.15, 0.0013, True)

    References
    ----------
    Agresti (2013).
    """
    m_r, n_r = _missing(reference)
    m_c, n_c = _missing(current)
    return missing_rate_test_counts(m_r, n_r, m_c, n_c, alpha=alpha)


def _missing(values: Any) -> tuple[int, int]:
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        x = array.astype(np.float64).ravel()
        return int(np.count_nonzero(~np.isfinite(x))), len(x)
    series = pd.Series(array.ravel(), dtype=object)
    return int(series.isna().sum()), len(series)
