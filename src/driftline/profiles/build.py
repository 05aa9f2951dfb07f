"""Building reference profiles: quantile bins and ranked categories from training data, laid
out (:func:`reference_bins`) or laid out and counted in one look at each feature
(:func:`reference_profile`, behind :func:`build_reference_profile`); and the one conversion of
rows into the columns a profile counts (:func:`profile_columns`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.errors import DataError
from driftline.profiles.categorical import (
    DEFAULT_UNSEEN_CAPACITY,
    CategoricalProfile,
    arrow_strings,
    arrow_value_counts,
)
from driftline.profiles.dataset import DatasetProfile, FeatureProfile
from driftline.profiles.encoding import FloatArray, IntArray
from driftline.profiles.numeric import DEFAULT_SAMPLE_SIZE, NumericProfile, empty_float
from driftline.schema import FeatureSchema

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_MAX_CATEGORIES",
    "build_reference_profile",
    "category_counts",
    "profile_columns",
    "quantile_edges",
    "reference_bins",
    "reference_profile",
    "value_counts",
]

#: Default number of quantile bins of a numeric feature.
DEFAULT_BINS = 20
#: Default number of categories kept per categorical feature (as :mod:`driftline.schema`).
DEFAULT_MAX_CATEGORIES = 1_000


def quantile_edges(values: npt.ArrayLike, bins: int = DEFAULT_BINS) -> FloatArray:
    """Inner bin edges for a numeric reference sample.

    Edges are the reference quantiles at ``1/bins, ..., (bins-1)/bins`` (observed values),
    plus the minimum and just above the maximum so that values outside the reference range
    land in their own open-ended bins. A value that holds at least ``1/bins`` of the data (a
    tie, a zero of a zero-inflated feature, a level of an integer feature) gets a bin of its
    own. Bins the reference leaves empty between two edges are merged into their right-hand
    neighbour, so edges are strictly increasing and every inner bin holds reference data.

    Parameters
    ----------
    values
        Reference values; non-finite ones are ignored.
    bins
        Target number of quantile bins (at least 2).

    Example
    -------
    >>> quantile_edges([0, 0, 0, 0, 0, 1, 2, 3, 4, 5], bins=4).tolist()
    [0.0, 5e-324, 3.0, 5.000000000000001]
    >>> quantile_edges([1, 1, 2, 2, 2, 3], bins=10).tolist()
    [1.0, 2.0, 3.0, 3.0000000000000004]

    References
    ----------
    Hyndman and Fan (1996), "Sample quantiles in statistical packages", The American
    Statistician 50(4) (definition 1, the inverse of the empirical CDF).
    """
    if bins < 2:
        raise DataError(f"bins must be >= 2, got {bins}")
    x = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    x = np.sort(x if finite.all() else x[finite])
    return _sorted_quantile_edges(x, bins)


def _sorted_quantile_edges(x: FloatArray, bins: int) -> FloatArray:
    """:func:`quantile_edges` of sorted finite values."""
    n = len(x)
    if n == 0:
        return empty_float()
    # A heavy value (at least n / bins copies) is a run of at least ``step`` equal sorted
    # values, so it sits at one of the positions 0, step, 2 * step...: count only those.
    step = -(-n // bins)
    sampled = np.unique(x[::step])
    copies = np.searchsorted(x, sampled, side="right") - np.searchsorted(x, sampled, side="left")
    heavy = sampled[copies * bins >= n]
    # Inverse of the empirical CDF at i / bins: the value of rank ceil(n * i / bins).
    ranks = (n * np.arange(1, bins) + bins - 1) // bins
    quantiles = x[np.clip(ranks - 1, 0, n - 1)]
    candidates = np.unique(
        np.concatenate(
            [quantiles, heavy, np.nextafter(heavy, np.inf), [x[0], np.nextafter(x[-1], np.inf)]]
        )
    )
    candidates = candidates[candidates >= x[0]]
    # Values in bin [candidates[i], candidates[i + 1]) (the last bin open), from the sorted
    # values' positions. An empty bin is merged into its left neighbour by dropping its left
    # edge; the minimum and the edge just above the maximum (whose bins hold data or lie
    # outside the reference range) always stay.
    inner = np.diff(np.append(np.searchsorted(x, candidates, side="left"), n))
    keep = inner > 0
    keep[0] = keep[-1] = True
    return np.asarray(candidates[keep], dtype=np.float64)


def _numeric_values(column: pd.Series[Any]) -> FloatArray:
    if column.dtype == np.float64:  # numpy-backed floats, NaN for missing: as they are
        return np.asarray(column.to_numpy(), dtype=np.float64)
    if pd.api.types.is_bool_dtype(column.dtype):
        return np.asarray(column.astype(np.float64).to_numpy(), dtype=np.float64)
    try:
        return pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column '{column.name}' must be numeric: {exc}") from exc


def category_counts(values: Any) -> Counter[str]:
    """Count of each present value of a categorical column, by its string form.

    Counts of parts of a column add up to the counts of the whole (``Counter`` addition), so
    the categories of a reference too large for memory are counted batch by batch.
    """
    arrow = arrow_strings(values)
    if arrow is not None:
        names, counts = arrow_value_counts(arrow)
        total: Counter[str] = Counter()
        for name, count in zip(names, counts.tolist(), strict=True):
            if name is not None:
                total[name] += count
        return total
    column = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    present = column.dropna()
    if not pd.api.types.is_string_dtype(present.dtype) or present.dtype == object:
        present = present.astype(object).astype(str)
    return Counter({str(k): int(v) for k, v in present.value_counts().items()})


def _rank_categories(counts: Mapping[str, int], max_categories: int) -> tuple[str, ...]:
    ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return tuple(str(k) for k, _ in ranked[:max_categories])


def reference_bins(
    schema: FeatureSchema,
    numeric: Callable[[str], FloatArray],
    categories: Callable[[str], Mapping[str, int]],
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY,
    seed: int = 0,
) -> DatasetProfile:
    """An empty reference profile: the bins and categories of the reference, nothing counted.

    The layout step of :func:`build_reference_profile`, apart so that a reference larger than
    memory can be laid out from what it needs -- ``numeric(name)``, the float values of one
    numeric feature (quantile edges need them all), and ``categories(name)``, the counts per
    category of one categorical feature (:func:`category_counts`, which add up over batches)
    -- and then counted batch by batch with :meth:`DatasetProfile.add_columns`.
    """
    features: dict[str, FeatureProfile] = {}
    for spec in schema.features:
        if spec.kind == "categorical":
            features[spec.name] = CategoricalProfile.empty(
                _rank_categories(categories(spec.name), max_categories),
                unseen_capacity=unseen_capacity,
            )
        else:
            features[spec.name] = _numeric_layout(
                _sorted_present(numeric(spec.name))[0], bins, sample_size
            )
    return DatasetProfile(features, seed=seed)


def _sorted_present(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The finite values of ``x`` sorted, and in their order."""
    finite = np.isfinite(x)
    present = x if finite.all() else x[finite]
    return np.sort(present), present


def _numeric_layout(ordered: FloatArray, bins: int, sample_size: int) -> NumericProfile:
    """The empty reference profile of a numeric feature, from its sorted finite values."""
    present = len(ordered) > 0
    return NumericProfile.empty(
        _sorted_quantile_edges(ordered, bins) if bins >= 2 else quantile_edges(ordered, bins),
        reference_minimum=float(ordered[0]) if present else None,
        reference_maximum=float(ordered[-1]) if present else None,
        sample_size=sample_size,
    )


def build_reference_profile(
    frame: pd.DataFrame,
    schema: FeatureSchema,
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY,
    seed: int = 0,
) -> DatasetProfile:
    """Profile the training data of a model: the reference every window is compared with.

    Numeric and boolean features get :func:`quantile_edges` bins; categorical features keep
    their ``max_categories`` most frequent values (ties by name), the rest count as unseen.

    Parameters
    ----------
    frame
        Reference rows with a column per schema feature.
    schema
        The model's feature schema (names and kinds).
    bins
        Target number of quantile bins per numeric feature.
    sample_size
        Reservoir capacity per numeric feature.
    max_categories
        Most categories kept per categorical feature.
    unseen_capacity
        Unseen category names tallied per categorical feature.
    seed
        Seed of the reservoir keys.

    Example
    -------
    >>> from driftline.schema import infer_schema
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"n": rng.poisson(2.0, 500).astype(float),
    ...                       "c": rng.choice(["x", "y", "z"], 500, p=[0.7, 0.2, 0.1])})
    >>> ref = build_reference_profile(frame, infer_schema(frame, None))
    >>> ref.features["n"].edges.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 9.000000000000002]
    >>> ref.features["c"].categories, ref.features["c"].counts.tolist()
    (('x', 'y', 'z'), [363, 85, 52, 0])

    References
    ----------
    Hyndman and Fan (1996), "Sample quantiles in statistical packages".
    """
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise DataError(f"reference data lacks feature column(s) {missing}")
    columns = profile_columns(frame, schema)
    return reference_profile(
        schema,
        lambda name: columns[name],
        lambda name: value_counts(columns[name]),
        len(frame),
        bins=bins,
        sample_size=sample_size,
        max_categories=max_categories,
        unseen_capacity=unseen_capacity,
        seed=seed,
    )


def value_counts(values: Any) -> tuple[list[str | None], IntArray]:
    """The distinct values of a categorical column by their string form (None: missing) and
    how often each occurs. Counts of parts of a column add up to those of the whole."""
    arrow = arrow_strings(values)
    if arrow is not None:
        return arrow_value_counts(arrow)
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    present = codes >= 0
    per_unique = np.bincount(codes[present], minlength=len(uniques))
    total: dict[str | None, int] = {}
    for u, count in zip(uniques, per_unique.tolist(), strict=True):
        name = str(u)
        total[name] = total.get(name, 0) + count
    total[None] = len(codes) - int(np.count_nonzero(present))
    return list(total), np.fromiter(total.values(), dtype=np.int64, count=len(total))


def reference_profile(
    schema: FeatureSchema,
    numeric: Callable[[str], FloatArray],
    counts: Callable[[str], tuple[list[str | None], IntArray]],
    n_rows: int,
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY,
    seed: int = 0,
) -> DatasetProfile:
    """A reference profile laid out and counted in one look at each feature.

    ``numeric(name)`` gives every value of a numeric feature (its quantile edges need them
    all): they are sorted once, and the edges, bin counts, sums, range and moments all come
    from the sorted values. ``counts(name)`` gives the :func:`value_counts` of a categorical
    feature (they add up over batches): its categories and its counts come from them. So a
    reference read one column at a time is read once, not once for the layout and again for
    the counts. Counts, ranges, tallies and the reservoir samples equal those of
    :func:`reference_bins` followed by :meth:`DatasetProfile.add_columns` of all rows at once;
    sums and moments agree up to rounding (they are added in another order).
    """
    # The generator DatasetProfile.add_columns would draw from, drawn in the same feature order.
    rng = np.random.default_rng([seed, 0])
    features: dict[str, FeatureProfile] = {}
    for spec in schema.features:
        if spec.kind == "categorical":
            names, found = counts(spec.name)
            present = {
                n: int(k) for n, k in zip(names, found.tolist(), strict=True) if n is not None
            }
            c = CategoricalProfile.empty(
                _rank_categories(present, max_categories), unseen_capacity=unseen_capacity
            )
            c._add_counts(names, found)
            features[spec.name] = c
        else:
            values = numeric(spec.name)
            ordered, present_values = _sorted_present(values)
            p = _numeric_layout(ordered, bins, sample_size)
            p._add_sorted(ordered, present_values, len(values) - len(ordered), rng)
            features[spec.name] = p
    profile = DatasetProfile(features, n_rows=n_rows, seed=seed)
    profile._rng = rng
    return profile


def profile_columns(frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, Any]:
    """The columns a profile counts, from rows: float arrays for numeric and boolean
    features, the values themselves for categorical ones (compared by their string form).

    Every profile of rows -- a reference, a window, a block of a dataset on a Ray worker --
    goes through this one conversion, so the same rows count the same wherever they are read.
    """
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise DataError(f"data lacks feature column(s) {missing}")
    columns: dict[str, Any] = {}
    for spec in schema.features:
        column = frame[spec.name]
        if spec.kind == "categorical":
            string = pd.api.types.is_string_dtype(column.dtype) and column.dtype != object
            if string or arrow_strings(column) is not None:  # Arrow strings: counted in Arrow
                columns[spec.name] = column
            else:
                columns[spec.name] = column.to_numpy(dtype=object)
        else:
            columns[spec.name] = _numeric_values(column)
    return columns
