"""Population stability index (PSI) between two samples' counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from driftline.drift._counts import check_counts, histograms
from driftline.drift.result import TestResult

__all__ = ["psi", "psi_counts"]


def psi_counts(
    reference_counts: npt.ArrayLike,
    current_counts: npt.ArrayLike,
    *,
    threshold: float = 0.1,
    epsilon: float = 1e-4,
) -> TestResult:
    """Population stability index over the same cells.

    ``PSI = sum((q - p) * ln(q / p))`` over cell proportions ``p`` (reference) and ``q``
    (current), with proportions floored at ``epsilon`` so that empty cells stay finite. PSI is
    the symmetrised Kullback-Leibler divergence; the rule of thumb reads < 0.1 as stable,
    0.1-0.2 as a moderate shift and > 0.2 as a large one. The p-value uses PSI's asymptotic
    law under "same distribution", ``PSI ~ (1/n_ref + 1/n_cur) * chi2(k - 1)`` (Yurdakul
    2018); it needs cells with a few values each.

    Parameters
    ----------
    reference_counts, current_counts
        Counts per cell.
    threshold
        ``drifted`` when ``PSI >= threshold``.
    epsilon
        Floor of a cell proportion.

    Example
    -------
    >>> r = psi_counts([250, 250, 250, 250], [200, 250, 250, 300])
    >>> round(r.statistic, 4), f"{r.p_value:.3f}", r.drifted
    (0.0203, '0.017', False)

    References
    ----------
    Yurdakul (2018), "Statistical properties of population stability index", PhD thesis,
    Western Michigan University. Siddiqi (2006), "Credit risk scorecards", Wiley.
    """
    r, c = check_counts(reference_counts, current_counts)
    n_r, n_c = r.sum(), c.sum()
    if n_r == 0 or n_c == 0:
        return TestResult(0.0, None, 0.0, threshold, False, "psi")
    p = np.maximum(r / n_r, epsilon)
    q = np.maximum(c / n_c, epsilon)
    value = float(np.sum((q - p) * np.log(q / p)))
    k = int(np.count_nonzero(r + c))
    p_value = float(stats.chi2.sf(value / (1 / n_r + 1 / n_c), k - 1)) if k > 1 else 1.0
    return TestResult(value, p_value, value, threshold, value >= threshold, "psi")


def psi(
    reference: Any, current: Any, *, bins: int = 10, threshold: float = 0.1, epsilon: float = 1e-4
) -> TestResult:
    """Population stability index of two raw samples.

    Numeric samples are counted over ``bins`` reference-quantile bins (the usual deciles), other
    samples per category. See :func:`psi_counts`.

    Parameters
    ----------
    reference, current
        The two samples.
    bins
        Quantile bins for numeric samples.
    threshold
        ``drifted`` when ``PSI >= threshold``.
    epsilon
        Floor of a cell proportion.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> r = psi(rng.normal(size=5000), rng.normal(0.5, 1.0, size=5000))
    >>> round(r.statistic, 3), r.drifted
    (0.266, True)

    References
    ----------
    Yurdakul (2018); Siddiqi (2006).
    """
    rc, cc, _ = histograms(reference, current, bins)
    return psi_counts(rc, cc, threshold=threshold, epsilon=epsilon)
