"""Merging stored profiles without an object per payload, bit for bit as objects merge."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import DataError
from driftline.profiles import DatasetProfile, build_reference_profile, merge_all, merge_payloads
from driftline.schema import infer_schema
from tests.profiles.profiletools import as_format_1, categorical_of, numeric_of, sample_frame


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
    frame = sample_frame(n, seed)
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
    assert categorical_of(direct, "c").unseen_names == categorical_of(general, "c").unseen_names
    assert list(categorical_of(direct, "c").unseen_names) == list(
        categorical_of(general, "c").unseen_names
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
        assert len(numeric_of(direct, "x").sample) == (100 if sampled else 0)
    whole = reference.empty_like(seed=1)
    whole.add_frame(frame)
    for name in ("x", "z", "k", "flag"):  # and the merge counts what one profile counts
        d, w = numeric_of(direct, name), numeric_of(whole, name)
        assert d.counts.tolist() == w.counts.tolist()
        assert (d.missing, d.below_reference, d.above_reference) == (
            w.missing,
            w.below_reference,
            w.above_reference,
        )
        assert d.mean == pytest.approx(w.mean) and d.m2 == pytest.approx(w.m2)
    assert categorical_of(direct, "c").counts.tolist() == categorical_of(whole, "c").counts.tolist()


def test_merge_payloads_reads_old_formats_through_the_general_path(
    reference: DatasetProfile,
) -> None:
    frame = _unusual_frame(900, seed=6)
    payloads = [
        _bucket(reference, frame.iloc[i * 300 : (i + 1) * 300], i, i == 1) for i in range(3)
    ]
    expected = _merged_generally(payloads)
    old = [as_format_1(d) for d in payloads]
    assert merge_payloads(old) == expected
    assert merge_payloads([old[0], payloads[1], old[2]]) == expected
    assert merge_payloads([payloads[0], old[1], payloads[2]]) == expected


def test_merge_payloads_refuses_what_merge_all_refuses(reference: DatasetProfile) -> None:
    a = _bucket(reference, sample_frame(100, seed=1), 1, False)
    other_frame = sample_frame(100, seed=2)
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
    window.add_frame(sample_frame(10, seed=4))
    assert window.n_rows == 10 and numeric_of(window, "k").count == 10
