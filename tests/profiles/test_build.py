"""Reference profiles from training data: quantile edges, binning, categories."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import DataError
from driftline.profiles import (
    DatasetProfile,
    NumericProfile,
    build_reference_profile,
    category_counts,
    profile_columns,
    quantile_edges,
    reference_bins,
)
from driftline.profiles.numeric import _bin_index
from driftline.schema import infer_schema
from tests.profiles.profiletools import assert_same, categorical_of, numeric_of, sample_frame


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).normal(size=1000),
        np.where(np.random.default_rng(2).random(1000) < 0.8, 0.0, 1.0),
        np.random.default_rng(3).poisson(0.5, 1000).astype(float),
        np.full(100, 7.0),
        np.random.default_rng(4).lognormal(0, 3, 1000),
        np.array([1.0]),
    ],
    ids=["normal", "binary", "poisson", "constant", "heavy-tail", "single"],
)
def test_edges_are_unique_and_every_inner_bin_holds_reference_data(values: np.ndarray) -> None:
    edges = quantile_edges(values, bins=20)
    assert np.all(np.diff(edges) > 0)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    assert counts[0] == 0 and counts[-1] == 0  # outside the reference range
    assert np.all(counts[1:-1] > 0)
    assert edges[0] == values.min() and edges[-1] == np.nextafter(values.max(), np.inf)


@pytest.mark.parametrize("n", [1, 7, 100, 1001])
@pytest.mark.parametrize("bins", [2, 3, 10, 20])
def test_edges_hold_the_inverted_cdf_quantiles(n: int, bins: int) -> None:
    values = np.random.default_rng(n).normal(size=n)
    ordered = np.sort(values)
    # Smallest value whose empirical CDF reaches i / bins, in exact arithmetic (numpy's float
    # ``q * n`` sometimes lands one rank higher, e.g. 0.35 * 100).
    expected = [ordered[math.ceil(Fraction(n * i, bins)) - 1] for i in range(1, bins)]
    edges = quantile_edges(values, bins=bins)
    assert set(expected) <= set(edges.tolist())


def test_heavy_values_get_their_own_bin() -> None:
    rng = np.random.default_rng(0)
    values = np.where(rng.random(10_000) < 0.6, 0.0, rng.exponential(1.0, 10_000))
    edges = quantile_edges(values, bins=10)
    idx = np.searchsorted(edges, values, side="right")
    zero_bins = set(idx[values == 0.0].tolist())
    assert len(zero_bins) == 1
    assert not np.any(values[idx == zero_bins.pop()] != 0.0)


def test_integer_levels_are_bins() -> None:
    edges = quantile_edges(np.repeat([1.0, 2.0, 3.0], [30, 50, 20]), bins=10)
    assert edges.tolist() == [1.0, 2.0, 3.0, np.nextafter(3.0, np.inf)]


def test_bad_edges_and_bins_are_refused() -> None:
    with pytest.raises(DataError, match="bins must be >= 2"):
        quantile_edges([1.0, 2.0], bins=1)
    with pytest.raises(DataError, match="strictly increasing"):
        NumericProfile.empty([1.0, 1.0])


def _quantile_edges_by_scanning(values: np.ndarray, bins: int) -> list[float]:
    """quantile_edges as first written: every run of equal values counted, every value
    binned (the oracle of the faster version, which looks at the sorted values' positions)."""
    x = np.sort(values[np.isfinite(values)])
    n = len(x)
    if n == 0:
        return []
    starts = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    counts = np.diff(np.append(starts, n))
    heavy = x[starts[counts * bins >= n]]
    ranks = (n * np.arange(1, bins) + bins - 1) // bins
    quantiles = x[np.clip(ranks - 1, 0, n - 1)]
    candidates = np.unique(
        np.concatenate(
            [quantiles, heavy, np.nextafter(heavy, np.inf), [x[0], np.nextafter(x[-1], np.inf)]]
        )
    )
    candidates = candidates[candidates >= x[0]]
    inner = np.bincount(np.searchsorted(candidates, x, side="right"), minlength=len(candidates) + 1)
    keep = inner[1:] > 0
    keep[0] = keep[-1] = True
    return candidates[keep].tolist()


@settings(max_examples=80, deadline=None)
@given(
    pool=st.lists(
        st.floats(min_value=-1e300, max_value=1e300, allow_subnormal=True)
        | st.sampled_from([math.nan, math.inf, -math.inf]),
        min_size=1,
        max_size=30,
    ),
    n=st.integers(1, 3_000),
    bins=st.integers(2, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_quantile_edges_equal_the_scanning_definition(
    pool: list[float], n: int, bins: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.choice(np.array(pool), size=n)  # ties, heavy values, NaN and infinities
    if seed % 2:
        values = values + rng.normal(size=n) * (seed % 7)  # and mostly distinct ones
    assert quantile_edges(values, bins).tolist() == _quantile_edges_by_scanning(values, bins)


_FLOATS = st.floats(min_value=-1e100, max_value=1e100, allow_nan=False, allow_subnormal=True)


@settings(max_examples=60, deadline=None)
@given(
    pool=st.lists(_FLOATS, min_size=1, max_size=40),
    edges=st.lists(_FLOATS, min_size=1, max_size=70, unique=True),
    n=st.sampled_from([1023, 1024, 5_000, 32_768 + 17]),
    seed=st.integers(0, 2**32 - 1),
)
def test_binning_equals_searchsorted(
    pool: list[float], edges: list[float], n: int, seed: int
) -> None:
    # Large batches are binned block by block with one comparison per edge (_bin_index);
    # values drawn from a small pool hit the edges themselves, and edges from the same pool.
    rng = np.random.default_rng(seed)
    values = rng.choice(np.array(pool + edges[: len(edges) // 2]), size=n)
    e = np.unique(np.array(edges, dtype=np.float64))
    expected = np.searchsorted(e, values, side="right")
    np.testing.assert_array_equal(_bin_index(e, values), expected)
    # A profile on those edges counts the same bins, and out-of-range values as the reference
    # range says (whether or not the outer bins are that range).
    for lo, hi in ((e[0], np.nextafter(e[-1], -np.inf)), (e[0], e[-1]), (None, None)):
        p = NumericProfile.empty(
            e,
            reference_minimum=None if lo is None else float(lo),
            reference_maximum=None if hi is None else float(hi),
            sample_size=0,
        )
        p.add(values, rng)
        assert p.counts.tolist() == np.bincount(expected, minlength=len(e) + 1).tolist()
        assert p.below_reference == (0 if lo is None else int(np.count_nonzero(values < lo)))
        assert p.above_reference == (0 if hi is None else int(np.count_nonzero(values > hi)))


def test_reference_profile_summarises_each_feature(reference: DatasetProfile) -> None:
    frame = sample_frame(5000)
    assert reference.n_rows == 5000
    x = numeric_of(reference, "x")
    present = frame["x"].dropna().to_numpy()
    assert x.count == len(present) and x.missing == 5000 - len(present)
    assert x.counts.sum() == x.count
    assert x.mean == pytest.approx(present.mean())
    assert x.std == pytest.approx(present.std(ddof=1))
    assert (x.minimum, x.maximum) == (present.min(), present.max())
    assert (x.reference_minimum, x.reference_maximum) == (present.min(), present.max())
    assert x.sums.sum() == pytest.approx(present.sum())
    assert x.below_reference == x.above_reference == 0
    assert len(x.sample) == 100 and set(x.sample) <= set(present)
    assert np.all(np.diff(x.sample_keys) >= 0)
    flag = numeric_of(reference, "flag")
    assert flag.count == 5000 and flag.mean == pytest.approx(frame["flag"].mean())
    c = categorical_of(reference, "c")
    assert c.categories == ("a", "b", "c", "d")  # most frequent first
    assert c.counts.tolist()[:-1] == [int((frame["c"] == v).sum()) for v in "abcd"]
    assert c.unseen == 0 and c.missing == 0


@pytest.mark.parametrize("strings", ["str", "object"])
def test_a_large_reference_counts_as_laying_out_then_adding(strings: str) -> None:
    # A reference is counted from the sorted values its edges come from and from the value
    # counts its categories come from, not binned a second time: the same profile (70k rows:
    # more than one block of the window's block-by-block counting).
    n = 70_000
    frame = sample_frame(n, seed=3)
    frame["c"] = frame["c"].astype(strings)
    frame.loc[frame.index[::97], "c"] = None
    frame["u"] = pd.Series([f"u{i % 40}" for i in range(n)], dtype=strings)  # long tail
    frame.loc[frame.index[::5], "x"] = np.inf
    schema = infer_schema(frame, None)
    got = build_reference_profile(frame, schema, max_categories=25, seed=5)
    columns = profile_columns(frame, schema)
    expected = reference_bins(
        schema,
        lambda name: columns[name],
        lambda name: category_counts(columns[name]),
        max_categories=25,
        seed=5,
    )
    expected.add_columns(columns)
    assert_same(got, expected)
    later = frame.iloc[:1000]  # and both go on counting alike
    got.add_frame(later)
    expected.add_frame(later)
    assert_same(got, expected)


def test_long_tailed_categories_keep_the_most_frequent() -> None:
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 1001) ** 1.1
    values = rng.choice([f"v{i:04d}" for i in range(1000)], 20_000, p=weights / weights.sum())
    frame = pd.DataFrame({"c": values})
    profile = build_reference_profile(frame, infer_schema(frame, None), max_categories=50)
    c = categorical_of(profile, "c")
    assert len(c.categories) == 50 and c.categories[0] == "v0000"
    assert c.count == 20_000 and c.unseen == 20_000 - int(c.counts[:-1].sum()) > 0
    assert len(c.unseen_names) <= c.unseen_capacity


def test_reference_needs_every_schema_column() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    schema = infer_schema(frame, None)
    with pytest.raises(DataError, match="lacks feature"):
        build_reference_profile(frame.rename(columns={"x": "y"}), schema)


def test_all_missing_numeric_feature() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan, 1.0]})
    profile = build_reference_profile(frame.iloc[:2], infer_schema(frame, None))
    x = numeric_of(profile, "x")
    assert x.edges.size == 0 and x.missing == 2 and x.count == 0
    assert x.reference_minimum is None
    json.dumps(profile.to_dict(), allow_nan=False)
