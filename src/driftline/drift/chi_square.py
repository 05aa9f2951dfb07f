"""Pearson's chi-square test of homogeneity between two samples' counts."""

from __future__ import annotations

import math
from typing import Any

import numpy.typing as npt
from scipy import stats

from driftline.drift._counts import check_counts, grouped, histograms, pool_cells
from driftline.drift.result import TestResult

__all__ = ["chi_square_test", "chi_square_test_counts"]


def chi_square_test_counts(
    reference_counts: npt.ArrayLike,
    current_counts: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    min_expected: float = 5.0,
    ordered: bool = False,
) -> TestResult:
    """Chi-square test that two samples' counts over the same cells come from one distribution.

    Cells the smaller sample is expected to fill with fewer than ``min_expected`` values are
    pooled first (neighbours for ordered bins, one shared group for categories; see
    :func:`driftline.drift._counts.pool_cells`), so that the chi-square approximation holds at
    every sample size. The effect size is Cramer's V of the 2 x k table, ``sqrt(chi2 / n)``.

    Parameters
    ----------
    reference_counts, current_counts
        Counts per cell.
    alpha
        Significance level: ``drifted`` when ``p_value < alpha``.
    min_expected
        Smallest expected count of a cell in the smaller sample; 0 disables pooling.
    ordered
        Whether the cells are ordered bins (pool neighbours) or categories.

    Example
    -------
    >>> r = chi_square_test_counts([500, 300, 200], [450, 300, 250])
    >>> round(r.statistic, 3), round(r.p_value, 4), round(r.effect_size, 4), r.drifted
    (8.187, 0.0167, 0.064, True)

    References
    ----------
    Pearson (1900), "On the criterion that a given system of deviations ...", Philosophical
    Magazine 50(302). Cochran (1954), "Some methods for strengthening the common chi-square
    tests", Biometrics 10(4) (expected counts of at least 5).
    """
    r, c = check_counts(reference_counts, current_counts)
    if min_expected > 0:
        groups = pool_cells(r, c, min_expected=min_expected, ordered=ordered)
        r, c = grouped(r, groups), grouped(c, groups)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    n_r, n_c = r.sum(), c.sum()
    if len(r) < 2 or n_r == 0 or n_c == 0:
        return TestResult(0.0, 1.0, 0.0, alpha, False, "chi_square")
    n = n_r + n_c
    pooled = (r + c) / n
    expected_r, expected_c = pooled * n_r, pooled * n_c
    chi2 = float(
        ((r - expected_r) ** 2 / expected_r).sum() + ((c - expected_c) ** 2 / expected_c).sum()
    )
    p = float(stats.chi2.sf(chi2, len(r) - 1))
    return TestResult(chi2, p, math.sqrt(chi2 / n), alpha, p < alpha, "chi_square")


def chi_square_test(
    reference: Any,
    current: Any,
    *,
    alpha: float = 0.05,
    bins: int = 10,
    min_expected: float = 5.0,
) -> TestResult:
    """Chi-square test of two raw samples.

    Numeric samples are counted over ``bins`` reference-quantile bins, other samples per
    category; missing values are dropped. See :func:`chi_square_test_counts`.

    Parameters
    ----------
    reference, current
        The two samples.
    alpha
        Significance level.
    bins
        Quantile bins for numeric samples.
    min_expected
        Smallest expected count of a cell in the smaller sample.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> r = chi_square_test(rng.choice(["a", "b"], 1000), rng.choice(["a", "b"], 1000))
    >>> round(r.p_value, 3), r.drifted
    (0.165, False)

    References
    ----------
    Pearson (1900); Cochran (1954).
    """
    rc, cc, ordered = histograms(reference, current, bins)
    return chi_square_test_counts(
        rc, cc, alpha=alpha, min_expected=min_expected, ordered=ordered
    )
