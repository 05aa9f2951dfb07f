"""The drift decision over profiles: severities, multiple testing, effect gate, small samples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.drift import DatasetDrift, DriftPolicy, decide_drift, decide_prediction_drift
from driftline.errors import ConfigurationError, DataError
from driftline.profiles import (
    DatasetProfile,
    build_output_profile,
    build_reference_profile,
    output_columns,
)
from driftline.schema import infer_schema


def _rows(n: int, seed: int, *, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < missing] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "y": rng.lognormal(0.0, 1.0, n),
            "k": rng.poisson(3.0, n).astype(float),
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    frame = _rows(20_000, 0)
    return build_reference_profile(frame, infer_schema(frame, None))


def _window(reference: DatasetProfile, frame: pd.DataFrame, seed: int = 1) -> DatasetProfile:
    window = reference.empty_like(seed=seed)
    window.add_frame(frame)
    return window


# --- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha must be in (0.0, 1.0], got 0.0"),
        ({"alpha": 1.0}, "alpha must be in (0.0, 1.0), got 1.0"),
        ({"numeric_test": "t"}, "numeric_test must be 'ks' or 'chi_square', got 't'"),
        ({"numeric_warning": -0.1}, "numeric_warning must be in [0.0, inf], got -0.1"),
        ({"numeric_critical": 0.01}, "numeric_critical must be in [0.05, inf], got 0.01"),
        ({"categorical_critical": 1.5}, "categorical_critical must be in [0.05, 1.0], got 1.5"),
        ({"missing_warning": float("nan")}, "missing_warning must be in [0.0, 1.0], got nan"),
        ({"min_samples": 0}, "min_samples must be in [1, inf], got 0"),
        ({"min_samples": 2.5}, "min_samples must be an integer >= 1, got 2.5"),
        ({"drift_share": 0.0}, "drift_share must be in (0.0, 1.0], got 0.0"),
        ({"min_expected": -1.0}, "min_expected must be in [0.0, inf], got -1.0"),
    ],
)
def test_policy_validates_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DriftPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_policy_is_frozen_and_documented() -> None:
    policy = DriftPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.alpha = 0.1  # type: ignore[misc]
    assert policy.numeric_test == "ks"
    doc = DriftPolicy.__doc__ or ""
    for field in dataclasses.fields(DriftPolicy):
        assert field.name in doc, field.name


# --- verdicts -------------------------------------------------------------------------------


def test_no_change_means_no_drift(reference: DatasetProfile) -> None:
    report = decide_drift(reference, _window(reference, _rows(5_000, 2)))
    assert report.severity == "none" and not report.drifted
    assert report.n_tested == 4 and report.n_drifted == 0 and report.drifted_features == ()
    for f in report.features:
        assert f.severity == "none" and f.p_value is not None and f.p_adjusted is not None
        assert f.p_adjusted >= f.p_value
        assert f.effect_size is not None and f.effect_size < f.warning_threshold
        assert f.n_current == 5_000 and f.reasons
    assert report.n_reference_rows == 20_000 and report.n_current_rows == 5_000


def test_a_shift_is_a_warning_or_critical_by_size(reference: DatasetProfile) -> None:
    warning = decide_drift(reference, _window(reference, _rows(20_000, 3, shift=0.1)))
    assert warning["x"].severity == "warning" and warning.severity == "warning"
    assert warning["x"].effect_name == "wasserstein_normalized"
    assert warning["x"].effect_size == pytest.approx(0.1, abs=0.03)
    critical = decide_drift(reference, _window(reference, _rows(5_000, 4, shift=0.5)))
    assert critical["x"].severity == "critical" and critical.severity == "critical"
    assert critical.drifted_features == ("x",)
    assert "critical drift in x" in critical.reasons[0]
    with pytest.raises(KeyError):
        critical["nope"]


def test_a_tiny_but_certain_shift_does_not_alarm(reference: DatasetProfile) -> None:
    frame = _rows(200_000, 5)
    frame["x"] += 0.03
    big = build_reference_profile(_rows(200_000, 6), infer_schema(frame, None))
    report = decide_drift(big, _window(big, frame))
    x = report["x"]
    assert x.p_adjusted is not None and x.p_adjusted < 0.05  # significant ...
    assert x.severity == "none"  # ... but too small to matter
    assert "not significant" not in x.reasons[0]


def test_categorical_mix_and_new_category(reference: DatasetProfile) -> None:
    frame = _rows(5_000, 7)
    rng = np.random.default_rng(7)
    frame.loc[rng.random(5_000) < 0.15, "c"] = "brand-new"
    report = decide_drift(reference, _window(reference, frame))
    c = report["c"]
    assert c.severity == "warning" and c.effect_name == "total_variation_corrected"
    assert c.effect_size == pytest.approx(0.15, abs=0.03)


def test_missing_rate_drift(reference: DatasetProfile) -> None:
    report = decide_drift(reference, _window(reference, _rows(5_000, 8, missing=0.2)))
    x = report["x"]
    assert x.severity == "critical" and x.missing_rate_reference == 0.0
    assert x.missing_rate_current == pytest.approx(0.2, abs=0.02)
    assert x.missing_p_adjusted is not None and x.missing_p_adjusted < 1e-10
    assert any("missing rate" in r for r in x.reasons)
    assert report["y"].missing_p_value is None  # nothing missing anywhere: nothing to test


def test_share_rule_makes_broad_warnings_critical(reference: DatasetProfile) -> None:
    frame = _rows(20_000, 9)
    frame["x"] += 0.1
    frame["k"] = frame["k"] + np.where(np.random.default_rng(9).random(20_000) < 0.15, 1.0, 0.0)
    report = decide_drift(reference, _window(reference, frame))
    assert {f.feature for f in report.features if f.severity == "warning"} == {"x", "k"}
    assert report.severity == "critical" and report.share_drifted == 0.5
    relaxed = decide_drift(
        reference, _window(reference, frame), policy=DriftPolicy(drift_share=0.75)
    )
    assert relaxed.severity == "warning"


def test_small_windows_are_insufficient_not_alarms(reference: DatasetProfile) -> None:
    report = decide_drift(reference, _window(reference, _rows(60, 10, shift=3.0)))
    assert report.severity == "insufficient_data" and not report.drifted
    assert all(f.severity == "insufficient_data" for f in report.features)
    assert "min_samples" in report["x"].reasons[0]
    empty = decide_drift(reference, reference.empty_like(seed=0))
    assert empty.severity == "insufficient_data" and empty.n_tested == 0


def test_mostly_missing_feature_still_reports_its_missing_rate(reference: DatasetProfile) -> None:
    report = decide_drift(reference, _window(reference, _rows(400, 11, missing=0.9)))
    x = report["x"]
    assert x.p_value is None and x.missing_p_value is not None
    assert x.severity == "critical"


def test_benjamini_hochberg_runs_across_all_hypotheses(reference: DatasetProfile) -> None:
    report = decide_drift(reference, _window(reference, _rows(3_000, 12, missing=0.01)))
    p = [f.p_value for f in report.features] + [report["x"].missing_p_value]
    adjusted = [f.p_adjusted for f in report.features] + [report["x"].missing_p_adjusted]
    m = len(p)
    assert m == 5
    for raw, adj in zip(p, adjusted, strict=True):
        assert raw is not None and adj is not None
        assert raw <= adj <= min(1.0, raw * m) + 1e-12


def test_numeric_test_can_be_chi_square(reference: DatasetProfile) -> None:
    frame = _rows(20_000, 13)
    frame["x"] *= np.sqrt(1.5)
    report = decide_drift(
        reference, _window(reference, frame), policy=DriftPolicy(numeric_test="chi_square")
    )
    assert report["x"].method == "chi_square" and report["x"].drifted


def test_profiles_must_share_bins(reference: DatasetProfile) -> None:
    other_frame = _rows(1_000, 14)
    other = build_reference_profile(other_frame, infer_schema(other_frame, None))
    with pytest.raises(DataError, match="different"):
        decide_drift(reference, other)


def test_false_alarms_stay_below_alpha() -> None:
    alarms = 0
    for seed in range(60):
        frame = _rows(500, 100 + seed)
        ref = build_reference_profile(frame, infer_schema(frame, None), sample_size=0)
        report: DatasetDrift = decide_drift(ref, _window(ref, _rows(500, 1000 + seed)))
        alarms += report.drifted
    assert alarms <= 6  # 5% of 60 is 3; allow chance


# --- prediction drift -----------------------------------------------------------------------


def test_prediction_drift_on_output_profiles() -> None:
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, 20_000)
    reference = build_output_profile((scores > 0.5).astype(int), scores, classes=[0, 1])
    same = reference.empty_like(seed=1)
    later = rng.beta(2, 5, 5_000)
    same.add_columns(output_columns((later > 0.5).astype(int), later))
    assert decide_prediction_drift(reference, same).severity == "none"
    shifted = reference.empty_like(seed=2)
    moved = rng.beta(2.4, 5, 5_000)
    shifted.add_columns(output_columns((moved > 0.5).astype(int), moved))
    report = decide_prediction_drift(reference, shifted)
    assert report.drifted and report["score"].drifted
    assert report.severity in ("warning", "critical")


# --- new categories, underflowing p-values, reported statistics (issue 11 point 4) ----------


@pytest.mark.parametrize(("seed", "share"), [(21, 0.05), (22, 0.05), (23, 0.05), (24, 0.04)])
def test_a_new_category_is_drift_on_its_own(
    reference: DatasetProfile, seed: int, share: float
) -> None:
    # 5% of traffic to a brand-new category is a total variation of 0.05: the bias-corrected
    # distance lands on or just under its warning threshold, so on its own it may not alarm.
    n = 20_000
    frame = _rows(n, seed)
    rng = np.random.default_rng(seed)
    frame.loc[rng.permutation(n)[: int(share * n)], "c"] = "brand-new"
    c = decide_drift(reference, _window(reference, frame))["c"]
    if share < 0.05:
        assert c.effect_size is not None and c.effect_size < 0.05  # the distance: no drift
    assert c.new_category_rate_reference == 0.0  # every reference category seen many times
    assert c.new_category_rate_current == pytest.approx(share)
    assert c.severity == "warning" and c.drifted
    assert any(f"new categories {share:.3g} of values" in r for r in c.reasons)


def test_new_category_rate_has_its_own_thresholds(reference: DatasetProfile) -> None:
    frame = _rows(20_000, 24)
    frame.loc[np.random.default_rng(24).permutation(20_000)[:1_000], "c"] = "brand-new"
    lenient = DriftPolicy(new_category_warning=0.1, new_category_critical=0.3)
    assert not decide_drift(reference, _window(reference, frame), policy=lenient)["c"].drifted
    strict = DriftPolicy(new_category_warning=0.01, new_category_critical=0.04)
    assert decide_drift(reference, _window(reference, frame), policy=strict)["c"].severity == (
        "critical"
    )


def test_a_few_new_values_are_not_drift(reference: DatasetProfile) -> None:
    frame = _rows(20_000, 25)
    frame.loc[:100, "c"] = "rare"  # 0.5% of values
    c = decide_drift(reference, _window(reference, frame))["c"]
    assert c.new_category_rate_current == pytest.approx(101 / 20_000)
    assert c.severity == "none"
    c = decide_drift(reference, _window(reference, _rows(5_000, 25)))["c"]
    assert c.new_category_rate_current == 0.0 and c.severity == "none"


def test_a_long_tailed_reference_expects_new_values() -> None:
    # 300 values over 1,000 Zipf-ish categories: most are seen once, so new values are expected.
    rng = np.random.default_rng(26)
    p = 1.0 / np.arange(1, 1001) ** 1.1
    p /= p.sum()
    names = np.array([f"v{i}" for i in range(1000)], dtype=object)
    ref_frame = pd.DataFrame({"c": rng.choice(names, 300, p=p)})
    ref = build_reference_profile(ref_frame, infer_schema(ref_frame, None), max_categories=1000)
    c_ref = ref.features["c"]
    seen_once = int((c_ref.counts[:-1] == 1).sum())
    assert seen_once > 30
    report = decide_drift(ref, _window(ref, pd.DataFrame({"c": rng.choice(names, 300, p=p)})))
    c = report["c"]
    assert c.new_category_rate_reference == pytest.approx(
        (seen_once + 3 * np.sqrt(seen_once)) / 300
    )
    assert c.new_category_rate_current > 0.1 and c.severity == "none"


@settings(max_examples=40, deadline=None)
@given(share=st.floats(0.0, 0.3), seed=st.integers(0, 2**16))
def test_new_category_share_never_lowers_severity(share: float, seed: int) -> None:
    # Property: turning the new-category check off (thresholds at 1.0) never makes the
    # verdict worse, and the verdict with it is never better than without.
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 3_000, p=[0.5, 0.3, 0.2])})
    ref = build_reference_profile(frame, infer_schema(frame, None))
    cur = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cur.loc[rng.random(3_000) < share, "c"] = "new"
    window = _window(ref, cur)
    on = decide_drift(ref, window)["c"]
    off = decide_drift(
        ref, window, policy=DriftPolicy(new_category_warning=1.0, new_category_critical=1.0)
    )["c"]
    rank = {"insufficient_data": -1, "none": 0, "warning": 1, "critical": 2}
    assert rank[on.severity] >= rank[off.severity]
    assert on.p_adjusted == off.p_adjusted  # no hypothesis added


def test_an_underflowing_p_value_is_not_printed_as_one(reference: DatasetProfile) -> None:
    big = _rows(200_000, 27, shift=3.0)
    x = decide_drift(reference, _window(reference, big))["x"]
    assert x.p_value == 0.0  # underflows: a 3 SD shift over 200k rows
    assert x.severity == "critical"
    assert "p<1e-300" in x.reasons[0] and "p=1 " not in x.reasons[0]
    missing = decide_drift(reference, _window(reference, _rows(200_000, 28, missing=0.9)))["x"]
    assert missing.missing_p_value == 0.0
    assert any("p<1e-300" in r for r in missing.reasons if "missing rate" in r)
    assert x.p_adjusted == 0.0 and "BH-adjusted<1e-300" in x.reasons[0]


def test_reported_statistics_are_configurable_and_do_not_decide(
    reference: DatasetProfile,
) -> None:
    from scipy import stats

    from driftline.drift import jensen_shannon_counts, psi_counts

    frame = _rows(5_000, 29, shift=0.3)
    window = _window(reference, frame)
    plain = decide_drift(reference, window)
    policy = DriftPolicy(report=("ks", "chi_square", "psi", "jensen_shannon"))
    rich = decide_drift(reference, window, policy=policy)
    # The verdicts are exactly the same ...
    for a, b in zip(plain.features, rich.features, strict=True):
        same = (a.severity, a.p_adjusted, a.effect_size)
        assert same == (b.severity, b.p_adjusted, b.effect_size)
        assert a.statistics == ()
    assert plain.severity == rich.severity
    # ... and the extra statistics are the library's, on the same cells.
    x = rich["x"]
    assert [s.method for s in x.statistics] == ["ks", "chi_square", "psi", "jensen_shannon"]
    ref_x, cur_x = reference.features["x"], window.features["x"]
    psi = x.statistic_of("psi")
    assert psi is not None
    assert psi.statistic == pytest.approx(psi_counts(ref_x.counts, cur_x.counts).statistic)
    js = x.statistic_of("jensen_shannon")
    assert js is not None
    p = ref_x.counts / ref_x.counts.sum()
    q = cur_x.counts / cur_x.counts.sum()
    from scipy.spatial.distance import jensenshannon

    assert js.statistic == pytest.approx(float(jensenshannon(p, q, base=2)))
    ours = jensen_shannon_counts(ref_x.counts, cur_x.counts)
    assert js.statistic == pytest.approx(ours.statistic)
    # Categorical features report chi-square (vs scipy), PSI and JS, but no KS (unordered).
    c = rich["c"]
    assert [s.method for s in c.statistics] == ["chi_square", "psi", "jensen_shannon"]
    chi = c.statistic_of("chi_square")
    ref_c, cur_c = reference.features["c"], window.features["c"]
    table = np.vstack([ref_c.counts[:-1], cur_c.counts[:-1]])
    expected = stats.chi2_contingency(table, correction=False)
    assert chi is not None and chi.p_value == pytest.approx(expected.pvalue, rel=1e-6)
    assert c.statistic_of("ks") is None


def test_reported_statistics_validate() -> None:
    with pytest.raises(ConfigurationError, match="got 'hellinger'"):
        DriftPolicy(report=("psi", "hellinger"))
    with pytest.raises(ConfigurationError, match="tuple of statistic names"):
        DriftPolicy(report="psi")  # type: ignore[arg-type]
    assert DriftPolicy(report=["psi"]).report == ("psi",)  # type: ignore[arg-type]
