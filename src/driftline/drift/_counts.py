"""Shared helpers of the batch tests: turning two samples into aligned counts, pooling cells."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.errors import DataError
from driftline.profiles import quantile_edges

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def check_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Two equally long 1-D arrays of non-negative counts."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.ndim != 1 or r.shape != c.shape:
        raise DataError(
            f"reference and current counts must be 1-D and aligned, got {r.shape} and {c.shape}"
        )
    if np.any(r < 0) or np.any(c < 0) or not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise DataError("counts must be finite and non-negative")
    return r, c


def present(values: Any) -> npt.NDArray[Any]:
    """The non-missing values of a 1-D sample (None, NaN and +-inf are missing)."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        x = array.astype(np.float64).ravel()
        return x[np.isfinite(x)]
    series = pd.Series(array.ravel(), dtype=object)
    return series[~series.isna()].astype(str).to_numpy(dtype=object)


def numeric_present(values: Any, name: str) -> FloatArray:
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        raise DataError(f"{name} has no finite values")
    return x


def histograms(reference: Any, current: Any, bins: int) -> tuple[IntArray, IntArray, bool]:
    """Aligned counts of two raw samples, and whether the cells are ordered.

    Numeric samples are binned at reference quantiles (:func:`driftline.profiles.quantile_edges`,
    open-ended); other samples are counted per value over the union of values.
    """
    r, c = present(reference), present(current)
    if len(r) == 0 or len(c) == 0:
        raise DataError("both samples need at least one present value")
    if r.dtype.kind == "f" and c.dtype.kind == "f":
        # Quantile bins with open ends (the profile's extra bins outside the reference range
        # would be empty in the reference, which distances such as PSI punish hard).
        edges = quantile_edges(r, bins)[1:-1]
        k = len(edges) + 1
        rc = np.bincount(np.searchsorted(edges, r, side="right"), minlength=k)
        cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=k)
        return rc.astype(np.int64), cc.astype(np.int64), True
    r, c = r.astype(str), c.astype(str)
    categories = np.unique(np.concatenate([r, c]))
    rc = np.bincount(np.searchsorted(categories, r), minlength=len(categories))
    cc = np.bincount(np.searchsorted(categories, c), minlength=len(categories))
    return rc.astype(np.int64), cc.astype(np.int64), False


def pool_cells(
    reference: FloatArray, current: FloatArray, *, min_expected: float, ordered: bool
) -> IntArray:
    """Group label per cell so that every group is expected to hold enough of both samples.

    A cell stands alone when, under "same distribution", the smaller sample is expected to put
    ``min_expected`` values in it (the rule of thumb that keeps chi-square p-values honest).
    The rule looks at the *pooled* count of a cell, which the two samples share, so it does not
    favour either. Ordered cells (numeric bins) merge with their neighbours; unordered cells
    (categories) that fall short -- or that one sample never saw, like the unseen bucket of a
    profile -- go to one shared "rare" group.
    """
    n_r, n_c = reference.sum(), current.sum()
    pooled = reference + current
    need = min_expected * (n_r + n_c) / max(min(n_r, n_c), 1.0)
    groups = np.zeros(len(pooled), dtype=np.int64)
    if ordered:
        label, running = 0, 0.0
        for i, value in enumerate(pooled):
            groups[i] = label
            running += value
            if running >= need:
                label += 1
                running = 0.0
        if running < need and label > 0:
            groups[groups == label] = label - 1  # a short last group joins its neighbour
        return groups
    alone = (pooled >= need) & (reference > 0) & (current > 0)
    n_alone = int(alone.sum())
    groups[alone] = np.arange(n_alone)
    groups[~alone] = n_alone
    if 0 < pooled[~alone].sum() < need and n_alone > 0:
        # A short rare group joins the smallest cell standing alone.
        smallest = int(np.argmin(np.where(alone, pooled, np.inf)))
        groups[~alone] = groups[smallest]
    return groups


def grouped(values: FloatArray, groups: IntArray) -> FloatArray:
    return np.bincount(groups, weights=values).astype(np.float64)
