"""Row samples of window buckets: bottom-k merges across buckets and workers stay uniform."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.errors import DataError
from driftline.monitoring.sample import RowSample, merge_samples

COLUMNS = ("x", "y")


class KeyFeed:
    """A stand-in generator whose ``random(n)`` hands out fixed keys in order, so that the same
    rows get the same keys however they are split into buckets and batches."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys, self.at = keys, 0

    def random(self, n: int) -> np.ndarray:
        out = self.keys[self.at : self.at + n]
        self.at += n
        return out


def rows_of(ids: np.ndarray) -> np.ndarray:
    """Each row's values name it: (id, 2 * id), exactly representable in float32."""
    return np.column_stack([ids, 2 * ids]).astype(np.float64)


def fill(ids: np.ndarray, keys: np.ndarray, capacity: int, batches: Sequence[int]) -> RowSample:
    """A sample fed ``ids`` in batches of the given sizes (the rest in one last batch)."""
    sample = RowSample.empty(COLUMNS, capacity)
    feed = KeyFeed(keys)
    start = 0
    for size in [*batches, len(ids)]:
        part = ids[start : start + size]
        if part.size:
            sample.offer(part.size, feed, lambda pos, part=part: rows_of(part[pos]))  # type: ignore[misc]
        start += part.size
        if start >= len(ids):
            break
    return sample


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    capacity=st.integers(1, 40),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    batches=st.lists(st.integers(1, 50), max_size=5),
    seed=st.integers(0, 2**32 - 1),
)
def test_merged_parts_are_the_bottom_k_of_the_union(
    n: int, capacity: int, cuts: list[int], batches: list[int], seed: int
) -> None:
    """However rows are split (buckets, workers) and batched, merging the parts' samples gives
    exactly the rows with the ``capacity`` smallest keys of all of them: one reservoir's sample."""
    ids = np.arange(n)
    keys = np.random.default_rng(seed).random(n)
    edges = sorted({0, n, *[c for c in cuts if c <= n]})
    parts = [
        fill(ids[a:b], keys[a:b], capacity, batches) for a, b in itertools.pairwise(edges)
    ]
    expected = np.sort(np.argsort(keys)[:capacity])
    merged = merge_samples(parts) if parts else RowSample.empty(COLUMNS, capacity)
    assert merged.seen == n and merged.n == min(n, capacity)
    assert np.array_equal(np.sort(merged.values[:, 0]), expected.astype(np.float32))
    assert np.array_equal(merged.values[:, 1], 2 * merged.values[:, 0])  # rows stay whole
    assert np.all(np.diff(merged.keys) >= 0)
    if len(parts) >= 2:  # order and grouping of merges do not matter
        swapped = merge_samples([merge_samples(parts[1:]), parts[0]])
        assert np.array_equal(swapped.keys, merged.keys)
        assert np.array_equal(swapped.values, merged.values)
    # Stored and read back (a bucket payload in the store), the merge is the same.
    stored = [RowSample.from_dict(json.loads(json.dumps(p.to_dict()))) for p in parts]
    if stored:
        again = merge_samples(stored)
        assert np.array_equal(again.keys, merged.keys) and again.seen == n


def test_merged_sample_is_uniform_over_uneven_buckets_and_workers() -> None:
    """Real random keys: a busy bucket (40 rows) and two quiet ones (5 and 3 rows, another
    worker), capacity 6. Every row is kept with probability 6/48, and the number kept from the
    quiet buckets follows the hypergeometric law of a simple random sample of the union."""
    rng = np.random.default_rng(2026)
    sizes = (40, 5, 3)
    total, capacity, trials = sum(sizes), 6, 6_000
    kept = np.zeros(total)
    quiet = np.zeros(capacity + 1)
    for _ in range(trials):
        start, parts = 0, []
        for size in sizes:
            ids = np.arange(start, start + size)
            sample = RowSample.empty(COLUMNS, capacity)
            for chunk in np.array_split(ids, 3):  # several model calls per bucket
                sample.offer(len(chunk), rng, lambda pos, chunk=chunk: rows_of(chunk[pos]))  # type: ignore[misc]
            parts.append(sample)
            start += size
        chosen = merge_samples(parts).values[:, 0].astype(int)
        kept[chosen] += 1
        quiet[int(np.sum(chosen >= sizes[0]))] += 1
    # Inclusion: each row's count is Binomial(trials, capacity / total); chi-square over rows.
    expected = trials * capacity / total
    assert stats.chisquare(kept, np.full(total, expected)).pvalue > 1e-3
    law = stats.hypergeom(total, sizes[1] + sizes[2], capacity).pmf(np.arange(capacity + 1))
    seen = quiet[law * trials >= 5]  # cells with enough expected counts for chi-square
    want = law[law * trials >= 5] * trials
    assert stats.chisquare(seen, want * seen.sum() / want.sum()).pvalue > 1e-3


def test_parts_of_different_capacities_merge_at_the_smallest() -> None:
    ids = np.arange(100)
    keys = np.random.default_rng(1).random(100)
    small = fill(ids[:50], keys[:50], 5, [])
    large = fill(ids[50:], keys[50:], 20, [])
    merged = merge_samples([small, large])
    assert merged.capacity == 5 and merged.n == 5 and merged.seen == 100
    assert np.array_equal(
        np.sort(merged.values[:, 0]), np.sort(np.argsort(keys)[:5]).astype(np.float32)
    )


def test_samples_refuse_what_does_not_fit() -> None:
    with pytest.raises(DataError, match="capacity"):
        RowSample.empty(COLUMNS, 0)
    with pytest.raises(DataError, match="columns"):
        merge_samples([RowSample.empty(COLUMNS, 3), RowSample.empty(("x",), 3)])
    with pytest.raises(DataError, match="nothing to merge"):
        merge_samples([])
    sample = RowSample.empty(COLUMNS, 3)
    with pytest.raises(DataError, match="shape"):
        sample.offer(2, np.random.default_rng(0), lambda pos: np.zeros((len(pos), 5)))
    data = sample.to_dict() | {"values": "00"}
    with pytest.raises(DataError, match="bytes"):
        RowSample.from_dict(data)
