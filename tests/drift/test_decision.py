"""The drift decision over profiles: severities, multiple testing, effect gate, small samples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

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
