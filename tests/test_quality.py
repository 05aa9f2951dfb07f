from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from driftline.errors import ConfigurationError, DataError
from driftline.profiles import DatasetProfile, build_reference_profile
from driftline.quality import QualityFinding, QualityPolicy, QualityReport, check_quality
from driftline.schema import infer_schema


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(0.0, 1.0, n),
            "k": rng.poisson(3.0, n).astype(float),
            "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    frame = _rows(10_000, 0)
    return build_reference_profile(frame, infer_schema(frame, None))


def _check(
    reference: DatasetProfile, frame: pd.DataFrame, *, rejected: int = 0
) -> QualityReport:
    window = reference.empty_like(seed=1)
    window.add_frame(frame)
    return check_quality(reference, window, rejected=rejected)


def _finding(report: QualityReport, check: str, feature: str | None) -> QualityFinding:
    (found,) = [f for f in report.findings if f.check == check and f.feature == feature]
    return found


def test_clean_window_passes_every_check(reference: DatasetProfile) -> None:
    report = _check(reference, _rows(2_000, 1))
    assert report.passed and report.severity == "none" and not report.insufficient_data
    checks = {(f.check, f.feature) for f in report.findings}
    assert checks == {
        ("rejected_requests", None),
        ("missing_rate", "x"),
        ("missing_rate", "k"),
        ("missing_rate", "c"),
        ("out_of_range", "x"),
        ("out_of_range", "k"),
        ("unseen_categories", "c"),
        ("constant", "x"),
        ("constant", "k"),
        ("constant", "c"),
    }
    assert all(f.passed and f.severity == "soft" for f in report.findings)


def test_missing_rate_rise_soft_then_hard(reference: DatasetProfile) -> None:
    frame = _rows(1_000, 2)
    frame.loc[:99, "x"] = np.nan
    soft = _finding(_check(reference, frame), "missing_rate", "x")
    assert (soft.passed, soft.severity, soft.threshold) == (False, "soft", 0.05)
    assert soft.value == pytest.approx(0.1)
    frame.loc[:599, "x"] = np.nan
    report = _check(reference, frame)
    hard = _finding(report, "missing_rate", "x")
    assert (hard.passed, hard.severity, hard.threshold) == (False, "hard", 0.5)
    assert report.hard_failed and report.severity == "hard"
    assert "hard limit" in hard.message


def test_out_of_range_values(reference: DatasetProfile) -> None:
    frame = _rows(1_000, 3)
    frame.loc[:49, "x"] = 100.0
    found = _finding(_check(reference, frame), "out_of_range", "x")
    assert not found.passed and found.severity == "soft"
    assert found.value == pytest.approx(0.05)
    frame.loc[:299, "x"] = -100.0
    assert _finding(_check(reference, frame), "out_of_range", "x").severity == "hard"


def test_unseen_categories_name_the_newcomers(reference: DatasetProfile) -> None:
    frame = _rows(1_000, 4)
    frame.loc[:29, "c"] = "zz"
    found = _finding(_check(reference, frame), "unseen_categories", "c")
    assert not found.passed and found.value == pytest.approx(0.03)
    assert "'zz'" in found.message
    frame.loc[:399, "c"] = "yy"
    assert _finding(_check(reference, frame), "unseen_categories", "c").severity == "hard"


def test_rejected_requests_count_against_the_window(reference: DatasetProfile) -> None:
    frame = _rows(990, 5)
    found = _finding(_check(reference, frame, rejected=10), "rejected_requests", None)
    assert found.value == pytest.approx(0.01) and found.passed
    found = _finding(_check(reference, frame, rejected=30), "rejected_requests", None)
    assert not found.passed and found.severity == "soft"
    found = _finding(_check(reference, frame, rejected=500), "rejected_requests", None)
    assert found.severity == "hard"
    with pytest.raises(ConfigurationError, match="rejected must be >= 0"):
        _check(reference, frame, rejected=-1)


def test_constant_features(reference: DatasetProfile) -> None:
    frame = _rows(500, 6)
    frame["k"] = 3.0
    frame["c"] = "a"
    report = _check(reference, frame)
    assert not _finding(report, "constant", "k").passed
    assert not _finding(report, "constant", "c").passed
    assert _finding(report, "constant", "x").passed
    assert not report.hard_failed and report.severity == "soft"


def test_small_windows_only_check_rejections(reference: DatasetProfile) -> None:
    report = _check(reference, _rows(10, 7), rejected=25)
    assert report.insufficient_data
    assert [f.check for f in report.findings] == ["rejected_requests"]
    assert report.hard_failed
    assert _check(reference, _rows(10, 7)).findings == ()


def test_chance_is_added_for_small_references() -> None:
    rng = np.random.default_rng(0)
    weights = 1 / np.arange(1, 301) ** 1.1
    failures = 0
    for seed in range(40):
        local = np.random.default_rng(seed)
        frame = pd.DataFrame(
            {
                "x": local.normal(size=200),
                "c": local.choice([f"v{i}" for i in range(300)], 200, p=weights / weights.sum()),
            }
        )
        ref = build_reference_profile(frame, infer_schema(frame, None))
        window = ref.empty_like(seed=seed)
        window.add_frame(
            pd.DataFrame(
                {
                    "x": rng.normal(size=2000),
                    "c": rng.choice([f"v{i}" for i in range(300)], 2000, p=weights / weights.sum()),
                }
            )
        )
        report = check_quality(ref, window)
        failures += not report.passed
    assert failures <= 4


def test_policy_validation_and_shape_checks(reference: DatasetProfile) -> None:
    with pytest.raises(ConfigurationError, match=r"missing_soft must be in \[0.0, 1.0\], got 2"):
        QualityPolicy(missing_soft=2)
    with pytest.raises(ConfigurationError, match=r"rejected_hard must be in \[0.01, 1.0\]"):
        QualityPolicy(rejected_hard=0.001)
    with pytest.raises(ConfigurationError, match="min_rows must be in"):
        QualityPolicy(min_rows=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        QualityPolicy().min_rows = 3  # type: ignore[misc]
    other_frame = _rows(100, 9)
    other = build_reference_profile(other_frame, infer_schema(other_frame, None))
    with pytest.raises(DataError):
        check_quality(reference, other)
