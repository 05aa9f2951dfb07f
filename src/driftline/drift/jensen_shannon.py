"""Jensen-Shannon distance between two samples' counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.drift._counts import check_counts, histograms
from driftline.drift.result import TestResult

__all__ = ["jensen_shannon", "jensen_shannon_counts"]


def jensen_shannon_counts(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, *, threshold: float = 0.1
) -> TestResult:
    """Jensen-Shannon distance (base 2, so between 0 and 1) over the same cells.

    The square root of the Jensen-Shannon divergence, the mean Kullback-Leibler divergence of
    each distribution from their average; finite even where one sample has empty cells.

    Parameters
    ----------
    reference_counts, current_counts
        Counts per cell.
    threshold
        ``drifted`` when the distance is at least this.

    Example
    -------
    >>> r = jensen_shannon_counts([50, 30, 20, 0], [40, 30, 20, 10])
    >>> round(r.statistic, 4), r.drifted
    (0.2324, True)

    References
    ----------
    Lin (1991), "Divergence measures based on the Shannon entropy", IEEE Transactions on
    Information Theory 37(1). Endres and Schindelin (2003), "A new metric for probability
    distributions", IEEE Transactions on Information Theory 49(7).
    """
    r, c = check_counts(reference_counts, current_counts)
    if r.sum() == 0 or c.sum() == 0:
        return TestResult(0.0, None, 0.0, threshold, False, "jensen_shannon")
    p, q = r / r.sum(), c / c.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    value = math.sqrt(max((kl_p + kl_q) / 2, 0.0))
    return TestResult(value, None, value, threshold, value >= threshold, "jensen_shannon")


def jensen_shannon(
    reference: Any, current: Any, *, bins: int = 10, threshold: float = 0.1
) -> TestResult:
    """Jensen-Shannon distance of two raw samples.

    Numeric samples are counted over ``bins`` reference-quantile bins, other samples per
    category. See :func:`jensen_shannon_counts`.

    Parameters
    ----------
    reference, current
        The two samples.
    bins
        Quantile bins for numeric samples.
    threshold
        ``drifted`` when the distance is at least this.

    Example
    -------
    >>> r = jensen_shannon(["a"] * 60 + ["b"] * 40, ["a"] * 40 + ["b"] * 60)
    >>> round(r.statistic, 4)
    0.1704

    References
    ----------
    Lin (1991); Endres and Schindelin (2003).
    """
    rc, cc, _ = histograms(reference, current, bins)
    return jensen_shannon_counts(rc, cc, threshold=threshold)
