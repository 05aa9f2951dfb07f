from __future__ import annotations

import itertools
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
    CategoricalProfile,
    DatasetProfile,
    NumericProfile,
    build_output_profile,
    build_reference_profile,
    category_counts,
    merge_all,
    merge_payloads,
    output_columns,
    profile_columns,
    quantile_edges,
    reference_bins,
)
from driftline.profiles.numeric import _bin_index
from driftline.schema import infer_schema


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 2.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "z": np.where(rng.random(n) < 0.7, 0.0, rng.exponential(3.0, n)),
            "k": rng.poisson(3.0, n).astype(float),
            "flag": rng.random(n) < 0.3,
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.15, 0.05]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    frame = _frame(5000)
    return build_reference_profile(frame, infer_schema(frame, None), sample_size=100)


def _numeric(profile: DatasetProfile, name: str) -> NumericProfile:
    p = profile.features[name]
    assert isinstance(p, NumericProfile)
    return p


def _categorical(profile: DatasetProfile, name: str) -> CategoricalProfile:
    p = profile.features[name]
    assert isinstance(p, CategoricalProfile)
    return p


# --- bins -----------------------------------------------------------------------------------


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


# Magnitudes whose squares stay finite (the moments would overflow, not the binning).
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


# --- reference ------------------------------------------------------------------------------


def test_reference_profile_summarises_each_feature(reference: DatasetProfile) -> None:
    frame = _frame(5000)
    assert reference.n_rows == 5000
    x = _numeric(reference, "x")
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
    flag = _numeric(reference, "flag")
    assert flag.count == 5000 and flag.mean == pytest.approx(frame["flag"].mean())
    c = _categorical(reference, "c")
    assert c.categories == ("a", "b", "c", "d")  # most frequent first
    assert c.counts.tolist()[:-1] == [int((frame["c"] == v).sum()) for v in "abcd"]
    assert c.unseen == 0 and c.missing == 0


@pytest.mark.parametrize("strings", ["str", "object"])
def test_a_large_reference_counts_as_laying_out_then_adding(strings: str) -> None:
    # A reference is counted from the sorted values its edges come from and from the value
    # counts its categories come from, not binned a second time: the same profile (70k rows:
    # more than one block of the window's block-by-block counting).
    n = 70_000
    frame = _frame(n, seed=3)
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
    _assert_same(got, expected)
    later = frame.iloc[:1000]  # and both go on counting alike
    got.add_frame(later)
    expected.add_frame(later)
    _assert_same(got, expected)


def test_long_tailed_categories_keep_the_most_frequent() -> None:
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 1001) ** 1.1
    values = rng.choice([f"v{i:04d}" for i in range(1000)], 20_000, p=weights / weights.sum())
    frame = pd.DataFrame({"c": values})
    profile = build_reference_profile(frame, infer_schema(frame, None), max_categories=50)
    c = _categorical(profile, "c")
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
    x = _numeric(profile, "x")
    assert x.edges.size == 0 and x.missing == 2 and x.count == 0
    assert x.reference_minimum is None
    json.dumps(profile.to_dict(), allow_nan=False)


# --- windows --------------------------------------------------------------------------------


def test_window_counts_out_of_range_missing_and_unseen(reference: DatasetProfile) -> None:
    window = reference.empty_like(seed=1)
    assert all(v == 0 for v in _numeric(window, "x").counts)
    x_ref = _numeric(reference, "x")
    assert x_ref.reference_minimum is not None and x_ref.reference_maximum is not None
    window.add_frame(
        pd.DataFrame(
            {
                "x": [x_ref.reference_minimum - 1, x_ref.reference_maximum + 1, None, math.inf],
                "z": [0.0, 0.0, 0.0, 0.0],
                "k": [1.0, 2.0, 3.0, 4.0],
                "flag": [1.0, 0.0, 1.0, 1.0],
                "c": ["a", "new", None, "new"],
            }
        )
    )
    x = _numeric(window, "x")
    assert (x.below_reference, x.above_reference, x.missing, x.count) == (1, 1, 2, 2)
    assert x.counts[0] == 1 and x.counts[-1] == 1
    c = _categorical(window, "c")
    assert (c.counts[0], c.unseen, c.missing) == (1, 2, 1)
    assert c.unseen_names == {"new": 2}
    assert window.n_rows == 4


def test_small_and_large_batches_agree(reference: DatasetProfile) -> None:
    frame = _frame(3000, seed=7)
    one_go = reference.empty_like(seed=1)
    one_go.add_frame(frame)
    by_rows = reference.empty_like(seed=1)
    for start in range(0, 3000, 3):
        by_rows.add_frame(frame.iloc[start : start + 3])
    for name in ("x", "z", "k", "flag"):
        a, b = _numeric(one_go, name), _numeric(by_rows, name)
        assert a.counts.tolist() == b.counts.tolist()
        assert (a.missing, a.count, a.below_reference, a.above_reference) == (
            b.missing,
            b.count,
            b.below_reference,
            b.above_reference,
        )
        assert (a.minimum, a.maximum) == (b.minimum, b.maximum)
        assert a.mean == pytest.approx(b.mean) and a.m2 == pytest.approx(b.m2)
        np.testing.assert_allclose(a.sums, b.sums, rtol=1e-9, atol=1e-9)
        assert len(a.sample) == len(b.sample) == 100
    assert _categorical(one_go, "c").counts.tolist() == _categorical(by_rows, "c").counts.tolist()


_SAMPLE_FIELDS = ("sample", "sample_keys", "sample_size")


def _without_samples(profile: DatasetProfile) -> dict[str, object]:
    data = profile.to_dict()
    for spec in data["features"].values():
        for key in _SAMPLE_FIELDS:
            spec.pop(key, None)
    return data


@pytest.mark.parametrize("batch", [5, 2_000])  # stacked small-batch path, per-column path
def test_a_profile_without_reservoir_counts_exactly_the_same(
    reference: DatasetProfile, batch: int
) -> None:
    # Window buckets are made with sample_size=0 (monitoring/window.py): everything but the
    # sample must be what a sampled profile of the same rows holds, bit for bit.
    frame = _frame(4_000, seed=11)
    sampled = reference.empty_like(seed=1)
    bare = reference.empty_like(seed=1, sample_size=0)
    for start in range(0, len(frame), batch):
        sampled.add_frame(frame.iloc[start : start + batch])
        bare.add_frame(frame.iloc[start : start + batch])
    for name in ("x", "z", "k", "flag"):
        assert len(_numeric(sampled, name).sample) == 100
        b = _numeric(bare, name)
        assert (b.sample_size, len(b.sample), len(b.sample_keys)) == (0, 0, 0)
    assert _without_samples(bare) == _without_samples(sampled)
    stored = bare.to_dict()
    assert all(stored["features"][n]["sample"] == "" for n in ("x", "z", "k", "flag"))
    # A bucket stored with a reservoir (before the change) merges with one without.
    mixed = merge_all([sampled, bare])
    assert _without_samples(mixed) == _without_samples(merge_all([bare, bare]))
    np.testing.assert_array_equal(_numeric(mixed, "x").sample, _numeric(sampled, "x").sample)


def test_add_columns_accepts_plain_lists_and_checks_lengths(reference: DatasetProfile) -> None:
    window = reference.empty_like(seed=3)
    window.add_columns({"x": [1.0, None], "z": [0, 0], "k": [1, 2], "flag": [0, 1], "c": ["a", 5]})
    assert _numeric(window, "x").missing == 1
    assert _categorical(window, "c").unseen_names == {"5": 1}
    with pytest.raises(DataError, match="different lengths"):
        window.add_columns({"x": [1.0], "z": [0, 0], "k": [1], "flag": [0], "c": ["a"]})
    with pytest.raises(DataError, match="no column"):
        window.add_columns({"x": [1.0]})


def test_pandas_string_and_nullable_columns() -> None:
    frame = pd.DataFrame(
        {
            "x": pd.array([1.0, None, 3.0], dtype="Float64"),
            "c": pd.array(["a", None, "b"], dtype="string"),
        }
    )
    profile = build_reference_profile(frame, infer_schema(frame, None))
    window = profile.empty_like(seed=0)
    window.add_frame(frame)
    big = pd.concat([frame] * 100, ignore_index=True)
    window.add_frame(big)
    assert _numeric(window, "x").missing == 101
    assert _categorical(window, "c").missing == 101
    assert _categorical(window, "c").counts.tolist() == [101, 101, 0]


@settings(max_examples=60, deadline=None)
@given(
    known=st.integers(0, 6),
    unseen=st.integers(0, 40),
    capacity=st.integers(0, 25),
    n=st.sampled_from([1, 60, 65, 3_000]),
    seed=st.integers(0, 2**32 - 1),
)
def test_arrow_strings_count_as_python_strings(
    known: int, unseen: int, capacity: int, n: int, seed: int
) -> None:
    # pandas' pyarrow-backed str columns and Arrow (dictionary) arrays are counted from Arrow's
    # value counts; the result equals counting the same values as Python objects.
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    names = np.array([f"k{i}" for i in range(known)] + [f"u{i}" for i in range(unseen)] + [None])
    values = names[rng.integers(0, len(names), n)]
    categories = [f"k{i}" for i in range(known)]
    as_objects = CategoricalProfile.empty(categories, unseen_capacity=capacity)
    as_objects.add(values.astype(object))
    arrow = pa.array(values.tolist(), type=pa.string())
    half = n // 2
    forms = {
        "pandas str": pd.Series(values.tolist(), dtype="str"),
        "pandas string[pyarrow]": pd.Series(values.tolist(), dtype="string[pyarrow]"),
        "arrow": arrow,
        "arrow dictionary, chunked": pa.chunked_array(
            [arrow[:half].dictionary_encode(), arrow[half:].dictionary_encode()]
        ),
    }
    for form, column in forms.items():
        p = CategoricalProfile.empty(categories, unseen_capacity=capacity)
        p.add(column)
        assert p.counts.tolist() == as_objects.counts.tolist(), form
        assert p.missing == as_objects.missing, form
        assert p.unseen_names == as_objects.unseen_names, form
        assert category_counts(column) == category_counts(values.astype(object)), form


# --- merging --------------------------------------------------------------------------------


def _window(reference: DatasetProfile, frame: pd.DataFrame, seed: int) -> DatasetProfile:
    window = reference.empty_like(seed=seed)
    window.add_frame(frame)
    return window


def _numbers(value: object) -> object:
    """A stored array (hex-encoded float64 in profile format 2) as numbers."""
    if isinstance(value, str):
        return np.frombuffer(bytes.fromhex(value), dtype="<f8")
    return value


def _assert_same(a: DatasetProfile, b: DatasetProfile) -> None:
    """Equal counts, samples and tallies; floating summaries equal up to rounding."""
    da, db = a.to_dict(), b.to_dict()
    assert da["n_rows"] == db["n_rows"]
    for name, fa in da["features"].items():
        fb = db["features"][name]
        for key, value in fa.items():
            if key in ("sums", "mean", "m2"):
                np.testing.assert_allclose(_numbers(value), _numbers(fb[key]), rtol=1e-9, atol=1e-6)
            else:
                assert value == fb[key], (name, key)


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 600), min_size=2, max_size=2),
    seeds=st.lists(st.integers(0, 2**32), min_size=3, max_size=3, unique=True),
)
def test_merge_is_associative_and_commutative(
    reference: DatasetProfile, cuts: list[int], seeds: list[int]
) -> None:
    frame = _frame(600, seed=11)
    lo, hi = sorted(cuts)
    a, b, c = (
        _window(reference, frame.iloc[:lo], seeds[0]),
        _window(reference, frame.iloc[lo:hi], seeds[1]),
        _window(reference, frame.iloc[hi:], seeds[2]),
    )
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    _assert_same(left, right)
    _assert_same(a.merge(b), b.merge(a))
    _assert_same(merge_all([c, a, b]), left)
    whole = _window(reference, frame, seeds[0])
    for name in ("x", "z", "k", "flag"):
        assert _numeric(left, name).counts.tolist() == _numeric(whole, name).counts.tolist()
        assert _numeric(left, name).mean == pytest.approx(_numeric(whole, name).mean)
        assert _numeric(left, name).std == pytest.approx(_numeric(whole, name).std)
    assert _categorical(left, "c").counts.tolist() == _categorical(whole, "c").counts.tolist()


def test_merge_all_of_many_buckets_equals_merging_one_by_one(reference: DatasetProfile) -> None:
    # Sixty buckets whose reservoirs are full: the one-pass merge must keep exactly the
    # bottom-k sample (and the counts, tallies and extremes) of merging from the left.
    frame = _frame(6_000, seed=21)
    buckets = [_window(reference, frame.iloc[i * 100 : (i + 1) * 100], 100 + i) for i in range(60)]
    stepwise = buckets[0]
    for bucket in buckets[1:]:
        stepwise = stepwise.merge(bucket)
    at_once = merge_all(buckets)
    _assert_same(at_once, stepwise)
    for name in ("x", "z", "k"):
        assert len(_numeric(at_once, name).sample) == 100
        np.testing.assert_array_equal(
            _numeric(at_once, name).sample_keys, _numeric(stepwise, name).sample_keys
        )
    whole = _window(reference, frame, 7)
    for name in ("x", "z", "k", "flag"):
        assert _numeric(at_once, name).counts.tolist() == _numeric(whole, name).counts.tolist()
        assert _numeric(at_once, name).mean == pytest.approx(_numeric(whole, name).mean)
    assert at_once.n_rows == 6_000


def test_merge_all_refuses_mixed_kinds(reference: DatasetProfile) -> None:
    a = _window(reference, _frame(50, seed=1), 1)
    features = dict(a.features)
    features["c"] = _numeric(a, "x")
    with pytest.raises(DataError, match="feature 'c' is categorical in one profile, numeric"):
        merge_all([a, DatasetProfile(features)])


def test_merge_keeps_the_inputs_and_refuses_other_bins(reference: DatasetProfile) -> None:
    a = _window(reference, _frame(100, seed=1), 1)
    before = a.to_dict()
    a.merge(a)
    assert a.to_dict() == before
    other_frame = _frame(100, seed=2)
    other = build_reference_profile(other_frame, infer_schema(other_frame, None))
    with pytest.raises(DataError, match="different bin edges"):
        a.merge(other)
    with pytest.raises(DataError, match="at least one"):
        merge_all([])


def test_merged_sample_is_uniform_over_sources() -> None:
    profile = NumericProfile.empty([0.5], sample_size=200)
    rng = np.random.default_rng(0)
    small = profile.empty_like()
    small.add(np.zeros(1_000), rng)
    big = profile.empty_like()
    big.add(np.ones(9_000), rng)
    merged = small.merge(big)
    assert len(merged.sample) == 200
    # 10% of the rows are zeros; the sample should hold about 20 of them.
    assert 8 <= int((merged.sample == 0.0).sum()) <= 35


def test_large_batch_sample_is_a_uniform_bottom_k() -> None:
    rng = np.random.default_rng(5)
    shares = []
    for _ in range(30):
        p = NumericProfile.empty([0.5], sample_size=100)
        values = np.arange(100_000, dtype=np.float64)
        p.add(values, rng)
        assert len(p.sample) == 100 and len(set(p.sample.tolist())) == 100
        assert np.all(np.diff(p.sample_keys) > 0) and p.sample_keys[-1] < 0.01
        shares.append(float((p.sample < 50_000).mean()))
    assert abs(np.mean(shares) - 0.5) < 0.05


def test_unseen_tally_is_exact_until_full_then_bounded() -> None:
    p = CategoricalProfile.empty(("a",), unseen_capacity=3)
    p.add(["x", "y", "x"])
    assert p.unseen_names == {"x": 2, "y": 1}
    q = p.empty_like()
    q.add(["z"] * 10 + ["w"] * 5 + ["x"] * 3 + ["v"])
    merged = p.merge(q)
    true = {"x": 5, "y": 1, "z": 10, "w": 5, "v": 1}
    bound = merged.unseen / (merged.unseen_capacity + 1)
    assert len(merged.unseen_names) <= 3
    for name, count in true.items():
        assert count - bound <= merged.unseen_names.get(name, 0) <= count
    assert merged.top_unseen(1)[0][0] == "z"


# --- persistence ----------------------------------------------------------------------------


def test_dict_round_trip_is_exact_and_json_safe(reference: DatasetProfile) -> None:
    window = _window(reference, _frame(300, seed=3), 9)
    for profile in (reference, window, reference.empty_like(seed=0)):
        text = json.dumps(profile.to_dict(), allow_nan=False)
        back = DatasetProfile.from_dict(json.loads(text))
        assert back == profile
        assert back.to_dict() == profile.to_dict()
    with pytest.raises(DataError, match="format"):
        DatasetProfile.from_dict({"format": 99})


def _as_format_1(data: dict[str, object]) -> dict[str, object]:
    """The same profile dict with every hex-encoded array as a JSON list (profile format 1)."""
    out = json.loads(json.dumps(data))
    out["format"] = 1
    for spec in out["features"].values():
        for key in ("edges", "counts", "sums", "sample", "sample_keys"):
            if isinstance(spec.get(key), str):
                dtype = "<i8" if key == "counts" else "<f8"
                spec[key] = np.frombuffer(bytes.fromhex(spec[key]), dtype=dtype).tolist()
    return out


def test_format_1_profiles_are_still_read(reference: DatasetProfile) -> None:
    window = _window(reference, _frame(300, seed=3), 9)
    for profile in (reference, window):
        old = _as_format_1(profile.to_dict())
        assert old["features"]["x"]["counts"] == _numeric(profile, "x").counts.tolist()
        assert DatasetProfile.from_dict(old) == profile


def test_corrupt_stored_arrays_are_refused(reference: DatasetProfile) -> None:
    data = json.loads(json.dumps(reference.to_dict()))
    bad = json.loads(json.dumps(data))
    bad["features"]["x"]["sample"] = "zz"
    with pytest.raises(DataError, match="sample is not hex-encoded"):
        DatasetProfile.from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["features"]["x"]["sums"] = bad["features"]["x"]["sums"][:-2]
    with pytest.raises(DataError, match="sums holds"):
        DatasetProfile.from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["features"]["x"]["sample_keys"] = bad["features"]["x"]["sample_keys"][:-16]
    with pytest.raises(DataError, match="sample and sample_keys"):
        DatasetProfile.from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["features"]["c"]["counts"] = bad["features"]["c"]["counts"][:-16]
    with pytest.raises(DataError, match="len\\(categories\\) \\+ 1"):
        DatasetProfile.from_dict(bad)


# --- merging stored payloads ----------------------------------------------------------------


def _stored(profile: DatasetProfile) -> dict[str, object]:
    return json.loads(json.dumps(profile.to_dict(), allow_nan=False))  # type: ignore[no-any-return]


def _merged_generally(payloads: list[dict[str, object]]) -> DatasetProfile:
    return merge_all(DatasetProfile.from_dict(d) for d in payloads)


def _merged_directly(payloads: list[dict[str, object]]) -> DatasetProfile:
    """merge_payloads, checked to take the direct path (no profile object per payload)."""

    def refuse(data: object) -> DatasetProfile:
        raise AssertionError("merge_payloads fell back to from_dict")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DatasetProfile, "from_dict", staticmethod(refuse))
        return merge_payloads(payloads)


def _bucket(reference: DatasetProfile, frame: pd.DataFrame, seed: int, sample: bool) -> dict:
    bucket = reference.empty_like(seed=seed, sample_size=None if sample else 0)
    bucket.add_frame(frame)
    return _stored(bucket)


def _unusual_frame(n: int, seed: int) -> pd.DataFrame:
    """Rows with missing values, values outside the reference range and unseen categories."""
    frame = _frame(n, seed)
    rng = np.random.default_rng(seed)
    frame.loc[rng.random(n) < 0.1, "z"] = 1e6
    frame.loc[rng.random(n) < 0.1, "k"] = -5.0
    frame["c"] = frame["c"].astype(object)
    unseen = rng.random(n) < 0.3
    frame.loc[unseen, "c"] = [f"u{i}" for i in rng.integers(0, 40, int(unseen.sum()))]
    frame.loc[rng.random(n) < 0.05, "c"] = None
    return frame


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 120), min_size=1, max_size=8),
    sampled=st.lists(st.booleans(), min_size=8, max_size=8),
    seed=st.integers(0, 2**31),
)
def test_merge_payloads_equals_merge_all_bit_for_bit(
    reference: DatasetProfile, sizes: list[int], sampled: list[bool], seed: int
) -> None:
    # Buckets of any size (empty ones too), with and without reservoir samples (buckets stored
    # before window buckets kept none), with unseen categories past the tally capacity.
    frame = _unusual_frame(sum(sizes), seed % 1000)
    bounds = np.cumsum([0, *sizes])
    payloads = [
        _bucket(reference, frame.iloc[lo:hi], seed + i, sampled[i])
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
    ]
    direct = _merged_directly(payloads)
    general = _merged_generally(payloads)
    assert direct.to_dict() == general.to_dict()  # floats too: mean, m2 and sums bit for bit
    assert list(direct.features) == list(general.features)
    assert _categorical(direct, "c").unseen_names == _categorical(general, "c").unseen_names
    assert list(_categorical(direct, "c").unseen_names) == list(
        _categorical(general, "c").unseen_names
    )


def test_merge_payloads_of_an_hour_of_buckets(reference: DatasetProfile) -> None:
    frame = _unusual_frame(6_000, seed=5)
    for sampled in (False, True):
        payloads = [
            _bucket(reference, frame.iloc[i * 100 : (i + 1) * 100], 100 + i, sampled)
            for i in range(60)
        ]
        direct = _merged_directly(payloads)
        assert direct == _merged_generally(payloads)
        assert direct.n_rows == 6_000
        assert len(_numeric(direct, "x").sample) == (100 if sampled else 0)
    whole = reference.empty_like(seed=1)
    whole.add_frame(frame)
    for name in ("x", "z", "k", "flag"):  # and the merge counts what one profile counts
        d, w = _numeric(direct, name), _numeric(whole, name)
        assert d.counts.tolist() == w.counts.tolist()
        assert (d.missing, d.below_reference, d.above_reference) == (
            w.missing,
            w.below_reference,
            w.above_reference,
        )
        assert d.mean == pytest.approx(w.mean) and d.m2 == pytest.approx(w.m2)
    assert _categorical(direct, "c").counts.tolist() == _categorical(whole, "c").counts.tolist()


def test_merge_payloads_reads_old_formats_through_the_general_path(
    reference: DatasetProfile,
) -> None:
    frame = _unusual_frame(900, seed=6)
    payloads = [
        _bucket(reference, frame.iloc[i * 300 : (i + 1) * 300], i, i == 1) for i in range(3)
    ]
    expected = _merged_generally(payloads)
    old = [_as_format_1(d) for d in payloads]
    assert merge_payloads(old) == expected
    assert merge_payloads([old[0], payloads[1], old[2]]) == expected
    assert merge_payloads([payloads[0], old[1], payloads[2]]) == expected


def test_merge_payloads_refuses_what_merge_all_refuses(reference: DatasetProfile) -> None:
    a = _bucket(reference, _frame(100, seed=1), 1, False)
    other_frame = _frame(100, seed=2)
    other = build_reference_profile(other_frame, infer_schema(other_frame, None)).empty_like()
    with pytest.raises(DataError, match="different bin edges"):
        merge_payloads([a, _stored(other)])
    bad = json.loads(json.dumps(a))
    bad["features"]["x"]["sums"] = bad["features"]["x"]["sums"][:-2]
    with pytest.raises(DataError, match="sums holds"):
        merge_payloads([a, bad])
    bad = json.loads(json.dumps(a))
    bad["features"]["c"]["counts"] = "zz" + bad["features"]["c"]["counts"][2:]
    with pytest.raises(DataError, match="counts is not hex-encoded"):
        merge_payloads([a, bad])
    bad = json.loads(json.dumps(a))
    bad["features"]["c"]["categories"] = ["a", "b", "c", "e"]
    with pytest.raises(DataError, match="different categories"):
        merge_payloads([a, bad])
    bad = json.loads(json.dumps(a))
    bad["features"] = dict(reversed(list(bad["features"].items())))
    with pytest.raises(DataError, match="different features"):
        merge_payloads([a, bad])
    with pytest.raises(DataError, match="format"):
        merge_payloads([a, {**a, "format": 99}])
    with pytest.raises(DataError, match="at least one"):
        merge_payloads([])
    # Unusual but valid: edges written with upper-case hex digits merge like the rest.
    upper = json.loads(json.dumps(a))
    upper["features"]["x"]["edges"] = upper["features"]["x"]["edges"].upper()
    assert merge_payloads([a, upper]) == _merged_generally([a, a])


def test_round_tripped_window_keeps_counting(reference: DatasetProfile) -> None:
    window = DatasetProfile.from_dict(json.loads(json.dumps(reference.empty_like().to_dict())))
    window.add_frame(_frame(10, seed=4))
    assert window.n_rows == 10 and _numeric(window, "k").count == 10


# --- outputs --------------------------------------------------------------------------------


def test_output_profile_bins_predictions_and_scores() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([2.0, 1.0, 1.0], size=2000)
    predicted = np.array(["x", "y", "z"])[proba.argmax(axis=1)]
    ref = build_output_profile(predicted, proba, classes=["x", "y", "z"])
    prediction = _categorical(ref, "prediction")
    score = _numeric(ref, "score")
    assert prediction.categories == ("x", "y", "z") and prediction.count == 2000
    assert score.count == 2000 and score.mean == pytest.approx(proba.max(axis=1).mean())
    window = ref.empty_like(seed=1)
    window.add_columns(output_columns(["x", "w"], [[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]]))
    assert _categorical(window, "prediction").unseen_names == {"w": 1}
    assert output_columns([0, 1], [[0.3, 0.7], [0.6, 0.4]])["score"].tolist() == [0.7, 0.4]
    with pytest.raises(DataError, match="predictions but"):
        output_columns([0], [0.1, 0.2])
