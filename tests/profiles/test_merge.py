"""Merging profile objects: associative, one pass over many buckets, samples and tallies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import DataError
from driftline.profiles import (
    CategoricalProfile,
    DatasetProfile,
    NumericProfile,
    build_reference_profile,
    merge_all,
)
from driftline.schema import infer_schema
from tests.profiles.profiletools import (
    assert_same,
    categorical_of,
    numeric_of,
    sample_frame,
    window_of,
)


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 600), min_size=2, max_size=2),
    seeds=st.lists(st.integers(0, 2**32), min_size=3, max_size=3, unique=True),
)
def test_merge_is_associative_and_commutative(
    reference: DatasetProfile, cuts: list[int], seeds: list[int]
) -> None:
    frame = sample_frame(600, seed=11)
    lo, hi = sorted(cuts)
    a, b, c = (
        window_of(reference, frame.iloc[:lo], seeds[0]),
        window_of(reference, frame.iloc[lo:hi], seeds[1]),
        window_of(reference, frame.iloc[hi:], seeds[2]),
    )
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    assert_same(left, right)
    assert_same(a.merge(b), b.merge(a))
    assert_same(merge_all([c, a, b]), left)
    whole = window_of(reference, frame, seeds[0])
    for name in ("x", "z", "k", "flag"):
        assert numeric_of(left, name).counts.tolist() == numeric_of(whole, name).counts.tolist()
        assert numeric_of(left, name).mean == pytest.approx(numeric_of(whole, name).mean)
        assert numeric_of(left, name).std == pytest.approx(numeric_of(whole, name).std)
    assert categorical_of(left, "c").counts.tolist() == categorical_of(whole, "c").counts.tolist()


def test_merge_all_of_many_buckets_equals_merging_one_by_one(reference: DatasetProfile) -> None:
    # Sixty buckets whose reservoirs are full: the one-pass merge must keep exactly the
    # bottom-k sample (and the counts, tallies and extremes) of merging from the left.
    frame = sample_frame(6_000, seed=21)
    buckets = [
        window_of(reference, frame.iloc[i * 100 : (i + 1) * 100], 100 + i) for i in range(60)
    ]
    stepwise = buckets[0]
    for bucket in buckets[1:]:
        stepwise = stepwise.merge(bucket)
    at_once = merge_all(buckets)
    assert_same(at_once, stepwise)
    for name in ("x", "z", "k"):
        assert len(numeric_of(at_once, name).sample) == 100
        np.testing.assert_array_equal(
            numeric_of(at_once, name).sample_keys, numeric_of(stepwise, name).sample_keys
        )
    whole = window_of(reference, frame, 7)
    for name in ("x", "z", "k", "flag"):
        assert numeric_of(at_once, name).counts.tolist() == numeric_of(whole, name).counts.tolist()
        assert numeric_of(at_once, name).mean == pytest.approx(numeric_of(whole, name).mean)
    assert at_once.n_rows == 6_000


def test_merge_all_refuses_mixed_kinds(reference: DatasetProfile) -> None:
    a = window_of(reference, sample_frame(50, seed=1), 1)
    features = dict(a.features)
    features["c"] = numeric_of(a, "x")
    with pytest.raises(DataError, match="feature 'c' is categorical in one profile, numeric"):
        merge_all([a, DatasetProfile(features)])


def test_merge_keeps_the_inputs_and_refuses_other_bins(reference: DatasetProfile) -> None:
    a = window_of(reference, sample_frame(100, seed=1), 1)
    before = a.to_dict()
    a.merge(a)
    assert a.to_dict() == before
    other_frame = sample_frame(100, seed=2)
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
