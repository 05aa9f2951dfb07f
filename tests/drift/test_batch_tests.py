"""Batch drift tests: golden values against scipy, properties, and one contract over the map."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftline.drift import (
    BATCH_TESTS,
    TestResult,
    benjamini_hochberg,
    bonferroni,
    chi_square_test,
    chi_square_test_counts,
    jensen_shannon,
    jensen_shannon_counts,
    ks_test,
    ks_test_counts,
    missing_rate_test,
    missing_rate_test_counts,
    psi,
    psi_counts,
    total_variation,
    total_variation_counts,
    wasserstein_distance,
    wasserstein_test,
    wasserstein_test_binned,
)
from driftline.errors import DataError

RNG = np.random.default_rng(20240611)
SAMPLES = [
    (RNG.normal(size=300), RNG.normal(0.3, 1.2, size=500)),
    (RNG.poisson(2.0, 400).astype(float), RNG.poisson(2.3, 250).astype(float)),
    (RNG.exponential(size=1000), RNG.exponential(size=1000)),
]

counts_strategy = st.lists(st.integers(0, 500), min_size=2, max_size=30).filter(
    lambda c: sum(c) > 0
)


# --- golden values --------------------------------------------------------------------------


@pytest.mark.parametrize(("reference", "current"), SAMPLES)
def test_ks_matches_scipy(reference: np.ndarray, current: np.ndarray) -> None:
    ours = ks_test(reference, current)
    theirs = stats.ks_2samp(reference, current, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)
    assert ours.drifted == (theirs.pvalue < 0.05)


def test_ks_limit_distribution_is_close_and_conservative_for_large_samples() -> None:
    rng = np.random.default_rng(7)
    reference, current = rng.normal(size=4000), rng.normal(0.05, 1.0, size=3000)
    ours = ks_test(reference, current)
    theirs = stats.ks_2samp(reference, current, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.p_value is not None
    assert theirs.pvalue <= ours.p_value <= theirs.pvalue * 1.03


@pytest.mark.parametrize(("reference", "current"), SAMPLES)
def test_binned_ks_is_exact_on_levels_and_never_above_raw(
    reference: np.ndarray, current: np.ndarray
) -> None:
    levels = np.unique(np.concatenate([reference, current]))
    idx_r = np.searchsorted(levels, reference, side="right")
    idx_c = np.searchsorted(levels, current, side="right")
    k = len(levels) + 1
    exact = ks_test_counts(np.bincount(idx_r, minlength=k), np.bincount(idx_c, minlength=k))
    raw = ks_test(reference, current)
    assert exact.statistic == pytest.approx(raw.statistic, abs=1e-12)
    assert exact.p_value == pytest.approx(raw.p_value)
    coarse_edges = np.quantile(reference, [0.25, 0.5, 0.75])
    coarse = ks_test_counts(
        np.bincount(np.searchsorted(coarse_edges, reference, side="right"), minlength=4),
        np.bincount(np.searchsorted(coarse_edges, current, side="right"), minlength=4),
    )
    assert coarse.statistic <= raw.statistic + 1e-12
    assert coarse.p_value is not None and raw.p_value is not None
    assert coarse.p_value >= raw.p_value - 1e-12


@pytest.mark.parametrize(
    "table",
    [
        [[500, 300, 200], [450, 300, 250]],
        [[12, 30, 8, 50], [20, 22, 10, 40]],
        [[1000, 10], [990, 30]],
    ],
)
def test_chi_square_matches_scipy(table: list[list[int]]) -> None:
    ours = chi_square_test_counts(table[0], table[1], min_expected=0)
    theirs = stats.chi2_contingency(np.array(table), correction=False)
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue)
    cramer = stats.contingency.association(np.array(table), method="cramer", correction=False)
    assert ours.effect_size == pytest.approx(cramer)


def test_chi_square_pools_sparse_cells() -> None:
    reference = [400, 300, 200, 3, 2, 1, 0]
    current = [380, 310, 205, 2, 1, 0, 4]
    pooled = chi_square_test_counts(reference, current)
    merged = stats.chi2_contingency(
        np.array([[400, 300, 200, 6], [380, 310, 205, 7]]), correction=False
    )
    assert pooled.statistic == pytest.approx(merged.statistic)
    assert pooled.p_value == pytest.approx(merged.pvalue)
    ordered = chi_square_test_counts([3, 100, 100, 2], [2, 100, 100, 3], ordered=True)
    merged = stats.chi2_contingency(np.array([[103, 102], [102, 103]]), correction=False)
    assert ordered.statistic == pytest.approx(merged.statistic)


def test_psi_is_the_symmetrised_kullback_leibler_divergence() -> None:
    r, c = np.array([120, 300, 380, 200]), np.array([100, 280, 400, 220])
    p, q = r / r.sum(), c / c.sum()
    result = psi_counts(r, c)
    assert result.statistic == pytest.approx(stats.entropy(p, q) + stats.entropy(q, p))
    assert result.p_value == pytest.approx(
        stats.chi2.sf(result.statistic / (1 / r.sum() + 1 / c.sum()), 3)
    )
    assert psi_counts([10, 0], [5, 5]).statistic == pytest.approx(
        (0.5 - 1.0) * np.log(0.5 / 1.0) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    )


@pytest.mark.parametrize(("reference", "current"), SAMPLES)
def test_wasserstein_matches_scipy(reference: np.ndarray, current: np.ndarray) -> None:
    assert wasserstein_distance(reference, current) == pytest.approx(
        stats.wasserstein_distance(reference, current)
    )
    w_r, w_c = RNG.random(len(reference)), RNG.random(len(current))
    assert wasserstein_distance(reference, current, w_r, w_c) == pytest.approx(
        stats.wasserstein_distance(reference, current, w_r, w_c)
    )
    result = wasserstein_test(reference, current)
    assert result.effect_size == pytest.approx(
        stats.wasserstein_distance(reference, current) / np.std(reference, ddof=1)
    )


def test_binned_wasserstein_tracks_the_exact_distance() -> None:
    rng = np.random.default_rng(0)
    reference, current = rng.normal(0, 1, 50_000), rng.normal(0.3, 1.2, 50_000)
    edges = np.quantile(reference, np.arange(1, 20) / 20)
    idx_r = np.searchsorted(edges, reference, side="right")
    idx_c = np.searchsorted(edges, current, side="right")
    r, c = np.bincount(idx_r, minlength=20), np.bincount(idx_c, minlength=20)
    centroids_r = np.bincount(idx_r, weights=reference, minlength=20) / r
    centroids_c = np.bincount(idx_c, weights=current, minlength=20) / c
    binned = wasserstein_test_binned(r, c, centroids_r, centroids_c, scale=1.0)
    exact = stats.wasserstein_distance(reference, current)
    assert binned.statistic == pytest.approx(exact, rel=0.03)


@pytest.mark.parametrize(
    ("r", "c"), [([50, 30, 20, 0], [40, 30, 20, 10]), ([1, 1], [1, 0]), ([5, 0, 5], [0, 10, 0])]
)
def test_jensen_shannon_matches_scipy(r: list[int], c: list[int]) -> None:
    assert jensen_shannon_counts(r, c).statistic == pytest.approx(
        jensenshannon(r, c, base=2), abs=1e-12
    )


def test_total_variation_golden_and_bias_correction() -> None:
    assert total_variation_counts([600, 300, 100], [500, 300, 200]).statistic == pytest.approx(
        0.1
    )
    assert total_variation(["a", "b"], ["b", "b"]).statistic == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    p = 1 / np.arange(1, 1001) ** 1.1
    p /= p.sum()
    plain, corrected = [], []
    for _ in range(20):
        a, b = rng.multinomial(200_000, p), rng.multinomial(200_000, p)
        plain.append(total_variation_counts(a, b).statistic)
        corrected.append(total_variation_counts(a, b, bias_corrected=True).statistic)
    assert np.mean(plain) > 0.015 and np.mean(corrected) < 0.005
    moved = p.copy()
    moved[0] -= 0.05
    moved[1] += 0.05
    a, b = rng.multinomial(200_000, p), rng.multinomial(200_000, moved)
    assert total_variation_counts(a, b, bias_corrected=True).statistic == pytest.approx(
        0.05, abs=0.005
    )


@pytest.mark.parametrize(
    "counts", [(30, 1000, 50, 1000), (500, 2000, 700, 3000), (0, 5000, 40, 2000), (2, 50, 9, 60)]
)
def test_missing_rate_matches_scipy(counts: tuple[int, int, int, int]) -> None:
    m_r, n_r, m_c, n_c = counts
    result = missing_rate_test_counts(m_r, n_r, m_c, n_c)
    table = np.array([[m_r, n_r - m_r], [m_c, n_c - m_c]])
    expected = stats.contingency.expected_freq(table)
    if expected.min() >= 5:
        theirs = stats.chi2_contingency(table, correction=False).pvalue
    else:
        theirs = stats.fisher_exact(table).pvalue
    assert result.p_value == pytest.approx(theirs, rel=1e-6, abs=1e-300)
    assert result.statistic == pytest.approx(m_c / n_c - m_r / n_r)
    assert result.effect_size == pytest.approx(abs(result.statistic))


def test_missing_rate_on_raw_values_and_bad_counts() -> None:
    result = missing_rate_test(np.array([1.0, np.nan, np.inf, 2.0]), ["a", None, "b", "c"])
    assert result.statistic == pytest.approx(0.25 - 0.5)
    with pytest.raises(DataError, match="cannot exceed"):
        missing_rate_test_counts(5, 4, 0, 10)
    with pytest.raises(DataError, match="current_total must be >= 0"):
        missing_rate_test_counts(0, 4, 0, -1)


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for m in (1, 2, 7, 50):
        p = rng.random(m) ** 3
        np.testing.assert_allclose(
            benjamini_hochberg(p), stats.false_discovery_control(p, method="bh")
        )
    assert benjamini_hochberg([]).tolist() == []
    assert bonferroni([0.2, 0.5]).tolist() == [0.4, 1.0]
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.5, 1.5])


def test_counts_must_be_aligned_and_non_negative() -> None:
    with pytest.raises(DataError, match="aligned"):
        psi_counts([1, 2], [1, 2, 3])
    with pytest.raises(DataError, match="non-negative"):
        ks_test_counts([1, -2], [1, 2])


# --- properties -----------------------------------------------------------------------------

COUNT_TESTS = {
    "ks": ks_test_counts,
    "chi_square": chi_square_test_counts,
    "psi": psi_counts,
    "jensen_shannon": jensen_shannon_counts,
    "total_variation": total_variation_counts,
}
UNORDERED = ("chi_square", "psi", "jensen_shannon", "total_variation")


@settings(max_examples=60, deadline=None)
@given(counts=counts_strategy, scale=st.integers(1, 5))
def test_identical_distributions_show_no_change(counts: list[int], scale: int) -> None:
    same = [v * scale for v in counts]
    for name, test in COUNT_TESTS.items():
        result = test(counts, same)
        assert result.statistic == pytest.approx(0.0, abs=1e-9), name
        assert not result.drifted, name
        if name in ("ks", "chi_square"):
            assert result.p_value == pytest.approx(1.0)
    assert psi_counts(counts, counts).statistic == 0.0
    positions = np.arange(len(counts), dtype=float)
    w = wasserstein_test_binned(counts, same, positions, positions, scale=1.0)
    assert w.statistic == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    pair=st.integers(2, 20).flatmap(
        lambda k: st.tuples(
            st.lists(st.integers(1, 300), min_size=k, max_size=k),
            st.lists(st.integers(1, 300), min_size=k, max_size=k),
            st.permutations(list(range(k))),
        )
    )
)
def test_unordered_tests_ignore_the_order_of_categories(
    pair: tuple[list[int], list[int], list[int]],
) -> None:
    r, c, order = pair
    rp, cp = [r[i] for i in order], [c[i] for i in order]
    for name in UNORDERED:
        a, b = COUNT_TESTS[name](r, c), COUNT_TESTS[name](rp, cp)
        assert a.statistic == pytest.approx(b.statistic), name
        assert (a.p_value is None) == (b.p_value is None)
        if a.p_value is not None and b.p_value is not None:
            assert a.p_value == pytest.approx(b.p_value, rel=1e-9, abs=1e-300)
    a = total_variation_counts(r, c, bias_corrected=True)
    b = total_variation_counts(rp, cp, bias_corrected=True)
    assert a.statistic == pytest.approx(b.statistic, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    x=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=5, max_size=60),
    y=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=5, max_size=60),
    seed=st.integers(0, 1000),
)
def test_raw_tests_ignore_row_order_and_distances_are_symmetric(
    x: list[float], y: list[float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    xa, ya = np.array(x), np.array(y)
    xs, ys = rng.permutation(xa), rng.permutation(ya)
    for name in ("ks", "wasserstein", "missing_rate"):
        assert BATCH_TESTS[name](xa, ya) == BATCH_TESTS[name](xs, ys), name
    assert ks_test(xa, ya).statistic == pytest.approx(ks_test(ya, xa).statistic)
    assert wasserstein_distance(xa, ya) == pytest.approx(wasserstein_distance(ya, xa))
    assert ks_test(xa, xa).statistic == 0.0 and wasserstein_test(xa, xa).statistic == 0.0


@settings(max_examples=60, deadline=None)
@given(
    p=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40),
)
def test_benjamini_hochberg_properties(p: list[float]) -> None:
    adjusted = benjamini_hochberg(p)
    raw = np.array(p)
    assert np.all(adjusted >= raw - 1e-15) and np.all(adjusted <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= -1e-15)
    assert np.all(adjusted <= bonferroni(p) + 1e-15)


@settings(max_examples=50, deadline=None)
@given(r=counts_strategy, c=counts_strategy)
def test_bias_corrected_total_variation_is_a_shrunk_distance(r: list[int], c: list[int]) -> None:
    k = min(len(r), len(c))
    r, c = r[:k], c[:k]
    if sum(r) == 0 or sum(c) == 0:
        return
    plain = total_variation_counts(r, c).statistic
    corrected = total_variation_counts(r, c, bias_corrected=True).statistic
    assert 0.0 <= corrected <= plain + 1e-12 <= 1.0 + 1e-12
    js = jensen_shannon_counts(r, c).statistic
    assert 0.0 <= js <= 1.0 + 1e-12
    # Pinsker-type bound between the two distances (base-2 JS): JS^2 <= TV.
    assert js**2 <= plain + 1e-9


# --- one contract over the map --------------------------------------------------------------


def _samples(name: str, shifted: bool, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(0.0, 1.0, 3000)
    current = rng.normal(1.0 if shifted else 0.0, 1.0, 3000)
    if name == "missing_rate":
        reference[rng.random(3000) < 0.02] = np.nan
        current[rng.random(3000) < (0.3 if shifted else 0.02)] = np.nan
    return reference, current


def test_the_map_names_every_batch_test_by_its_method() -> None:
    assert set(BATCH_TESTS) == {
        "ks",
        "chi_square",
        "psi",
        "wasserstein",
        "jensen_shannon",
        "total_variation",
        "missing_rate",
    }
    for name, test in BATCH_TESTS.items():
        reference, current = _samples(name, False, 0)
        assert test(reference, current).method == name


@pytest.mark.parametrize("name", sorted(BATCH_TESTS))
def test_contract(name: str) -> None:
    test = BATCH_TESTS[name]
    reference, current = _samples(name, False, 1)
    before = (reference.copy(), current.copy())
    result = test(reference, current)
    # frozen result with the documented fields
    assert isinstance(result, TestResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.drifted = True  # type: ignore[misc]
    assert result.p_value is None or 0.0 <= result.p_value <= 1.0
    assert result.effect_size >= 0.0 and np.isfinite(result.statistic)
    # inputs untouched; same input, same output
    np.testing.assert_array_equal(reference, before[0])
    np.testing.assert_array_equal(current, before[1])
    assert test(reference, current) == result
    # a sample against itself never drifts; two samples of one distribution do not here
    assert not test(reference, reference).drifted
    assert not result.drifted
    # a large change is caught
    assert test(*_samples(name, True, 2)).drifted
    # works on categories where the test is defined for them
    if name in ("chi_square", "psi", "jensen_shannon", "total_variation", "missing_rate"):
        cats = np.array(["a", "b", "c"], dtype=object)
        rng = np.random.default_rng(3)
        assert not test(rng.choice(cats, 2000), rng.choice(cats, 2000)).drifted
        shifted = rng.choice(cats, 2000, p=[0.6, 0.3, 0.1])
        if name != "missing_rate":
            assert test(rng.choice(cats, 2000), shifted).drifted


def test_raw_tests_refuse_samples_without_values() -> None:
    with pytest.raises(DataError):
        ks_test([np.nan], [1.0, 2.0])
    with pytest.raises(DataError):
        chi_square_test([None], ["a"])
    assert psi(np.zeros(50), np.zeros(50)).statistic == 0.0
    assert jensen_shannon(["a"] * 5, ["a"] * 5).statistic == 0.0
