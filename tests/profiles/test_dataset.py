"""Counting rows into a dataset profile: windows, batch sizes, column types."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import DataError
from driftline.profiles import (
    CategoricalProfile,
    DatasetProfile,
    build_reference_profile,
    category_counts,
    merge_all,
)
from driftline.schema import infer_schema
from tests.profiles.profiletools import categorical_of, numeric_of, sample_frame


def test_window_counts_out_of_range_missing_and_unseen(reference: DatasetProfile) -> None:
    window = reference.empty_like(seed=1)
    assert all(v == 0 for v in numeric_of(window, "x").counts)
    x_ref = numeric_of(reference, "x")
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
    x = numeric_of(window, "x")
    assert (x.below_reference, x.above_reference, x.missing, x.count) == (1, 1, 2, 2)
    assert x.counts[0] == 1 and x.counts[-1] == 1
    c = categorical_of(window, "c")
    assert (c.counts[0], c.unseen, c.missing) == (1, 2, 1)
    assert c.unseen_names == {"new": 2}
    assert window.n_rows == 4


def test_small_and_large_batches_agree(reference: DatasetProfile) -> None:
    frame = sample_frame(3000, seed=7)
    one_go = reference.empty_like(seed=1)
    one_go.add_frame(frame)
    by_rows = reference.empty_like(seed=1)
    for start in range(0, 3000, 3):
        by_rows.add_frame(frame.iloc[start : start + 3])
    for name in ("x", "z", "k", "flag"):
        a, b = numeric_of(one_go, name), numeric_of(by_rows, name)
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
    assert (
        categorical_of(one_go, "c").counts.tolist() == categorical_of(by_rows, "c").counts.tolist()
    )


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
    frame = sample_frame(4_000, seed=11)
    sampled = reference.empty_like(seed=1)
    bare = reference.empty_like(seed=1, sample_size=0)
    for start in range(0, len(frame), batch):
        sampled.add_frame(frame.iloc[start : start + batch])
        bare.add_frame(frame.iloc[start : start + batch])
    for name in ("x", "z", "k", "flag"):
        assert len(numeric_of(sampled, name).sample) == 100
        b = numeric_of(bare, name)
        assert (b.sample_size, len(b.sample), len(b.sample_keys)) == (0, 0, 0)
    assert _without_samples(bare) == _without_samples(sampled)
    stored = bare.to_dict()
    assert all(stored["features"][n]["sample"] == "" for n in ("x", "z", "k", "flag"))
    # A bucket stored with a reservoir (before the change) merges with one without.
    mixed = merge_all([sampled, bare])
    assert _without_samples(mixed) == _without_samples(merge_all([bare, bare]))
    np.testing.assert_array_equal(numeric_of(mixed, "x").sample, numeric_of(sampled, "x").sample)


def test_add_columns_accepts_plain_lists_and_checks_lengths(reference: DatasetProfile) -> None:
    window = reference.empty_like(seed=3)
    window.add_columns({"x": [1.0, None], "z": [0, 0], "k": [1, 2], "flag": [0, 1], "c": ["a", 5]})
    assert numeric_of(window, "x").missing == 1
    assert categorical_of(window, "c").unseen_names == {"5": 1}
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
    assert numeric_of(window, "x").missing == 101
    assert categorical_of(window, "c").missing == 101
    assert categorical_of(window, "c").counts.tolist() == [101, 101, 0]


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
