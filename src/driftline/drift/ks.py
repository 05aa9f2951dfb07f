"""Two-sample Kolmogorov-Smirnov test, on raw samples or on counts over ordered bins."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from driftline.drift._counts import check_counts, numeric_present
from driftline.drift.result import TestResult

__all__ = ["ks_test", "ks_test_counts"]


#: Above this effective size the limiting Kolmogorov distribution replaces the finite one.
EXACT_LIMIT = 1_000


def _p_value(d: float, n_reference: float, n_current: float) -> float:
    """Smirnov's asymptotic two-sided p-value.

    Up to an effective size ``en = n m / (n + m)`` of :data:`EXACT_LIMIT` this is
    ``scipy.stats.ks_2samp(method="asymp")``: the one-sample Kolmogorov distribution at
    ``round(en)``. Beyond it, the limiting distribution of ``sqrt(en) * D``: it never gives a
    smaller p-value (within 3% of the finite one at ``en = 1000``, closer above) and costs
    microseconds where the finite one can take a second at a million rows.
    """
    en = n_reference * n_current / (n_reference + n_current)
    if en <= EXACT_LIMIT:
        p = stats.kstwo.sf(d, max(np.round(en), 1.0))
    else:
        p = special.kolmogorov(np.sqrt(en) * d)
    return float(np.clip(p, 0.0, 1.0))


def ks_test(reference: Any, current: Any, *, alpha: float = 0.05) -> TestResult:
    """Kolmogorov-Smirnov test of two numeric samples.

    The statistic is the largest gap between the two empirical CDFs; the p-value is Smirnov's
    asymptotic one (as ``scipy.stats.ks_2samp(method="asymp")`` for effective sizes up to
    :data:`EXACT_LIMIT`, the limiting distribution beyond). Missing values (NaN, +-inf) are
    dropped. The effect size is the statistic.

    Parameters
    ----------
    reference, current
        The two samples.
    alpha
        Significance level: ``drifted`` when ``p_value < alpha``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> r = ks_test(rng.normal(size=2000), rng.normal(0.2, 1.0, size=2000))
    >>> round(r.statistic, 4), f"{r.p_value:.1e}", r.drifted
    (0.085, '9.8e-07', True)

    References
    ----------
    Smirnov (1948), "Table for estimating the goodness of fit of empirical distributions",
    Annals of Mathematical Statistics 19(2).
    """
    r = np.sort(numeric_present(reference, "reference"))
    c = np.sort(numeric_present(current, "current"))
    points = np.concatenate([r, c])
    gap = np.searchsorted(r, points, side="right") / len(r) - np.searchsorted(
        c, points, side="right"
    ) / len(c)
    d = float(np.max(np.abs(gap)))
    p = _p_value(d, len(r), len(c))
    return TestResult(d, p, d, alpha, p < alpha, "ks")


def ks_test_counts(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, *, alpha: float = 0.05
) -> TestResult:
    """Kolmogorov-Smirnov test on counts over the same ordered bins.

    The CDFs are compared at the bin edges only, so the statistic never exceeds the one on the
    raw samples and the p-value is conservative (never more alarming than the raw test).

    Parameters
    ----------
    reference_counts, current_counts
        Counts per bin, bins in increasing order.
    alpha
        Significance level.

    Example
    -------
    >>> r = ks_test_counts([100, 300, 400, 200], [200, 300, 300, 200])
    >>> round(r.statistic, 3), f"{r.p_value:.1e}", r.drifted
    (0.1, '8.3e-05', True)

    References
    ----------
    Smirnov (1948); Conover (1999), "Practical nonparametric statistics", 3rd ed., section 6.3.
    """
    r, c = check_counts(reference_counts, current_counts)
    n_r, n_c = r.sum(), c.sum()
    if n_r == 0 or n_c == 0:
        return TestResult(0.0, 1.0, 0.0, alpha, False, "ks")
    d = float(np.max(np.abs(np.cumsum(r) / n_r - np.cumsum(c) / n_c)))
    p = _p_value(d, n_r, n_c)
    return TestResult(d, p, d, alpha, p < alpha, "ks")
