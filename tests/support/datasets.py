"""Datasets for the comparison tests (driftline.compare over files, Parquet datasets and Ray
Data): rows that exercise every profile path, written as parts, and the check that two
comparisons agree count for count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.comparison import Comparison
from driftline.drift.decision import DatasetDrift
from driftline.profiles import CategoricalProfile, DatasetProfile, NumericProfile


def dataset_rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Numbers with ties, NaN and infinities, integers, booleans, strings with gaps and unseen
    values, a predicted label and a score."""
    income = rng.normal(50 + 10 * shift, 10, n)
    income[rng.random(n) < 0.03] = np.nan
    income[rng.random(n) < 0.002] = np.inf
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(
        object
    )
    region[rng.random(n) < 0.02] = None
    if shift:
        region[rng.random(n) < 0.05] = "atlantis"
    score = rng.beta(2, 5, n)
    return pd.DataFrame(
        {
            "income": income,
            "debt": np.round(rng.exponential(3.0 + shift, n), 1),  # ties
            "age": rng.integers(18, 80, n),
            "has_cosigner": rng.random(n) < 0.3,
            "region": region,
            "product": rng.choice([f"p{i:02d}" for i in range(30)], n),
            "prediction": (score > 0.5).astype(int),
            "score": score,
        }
    )


def write_parts(frame: pd.DataFrame, folder: Path, sizes: list[int], suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for i, size in enumerate(sizes):
        part = frame.iloc[start : start + size]
        path = folder / f"part-{i:03d}.{suffix}"
        if suffix == "parquet":
            part.to_parquet(path, index=False)
        else:
            part.to_csv(path, index=False)
        start += size
    assert start == len(frame)


def assert_same_counts(got: DatasetProfile, expected: DatasetProfile) -> None:
    """Every count equal, bit for bit; floating sums and moments up to rounding."""
    assert got.n_rows == expected.n_rows
    assert list(got.features) == list(expected.features)
    for name, p in expected.features.items():
        q = got.features[name]
        if isinstance(p, NumericProfile):
            assert isinstance(q, NumericProfile)
            np.testing.assert_array_equal(q.edges, p.edges, err_msg=name)
            np.testing.assert_array_equal(q.counts, p.counts, err_msg=name)
            assert (q.missing, q.count, q.below_reference, q.above_reference) == (
                p.missing,
                p.count,
                p.below_reference,
                p.above_reference,
            ), name
            assert (q.minimum, q.maximum) == (p.minimum, p.maximum), name
            assert (q.reference_minimum, q.reference_maximum) == (
                p.reference_minimum,
                p.reference_maximum,
            ), name
            np.testing.assert_allclose(q.sums, p.sums, rtol=1e-12, atol=1e-9, err_msg=name)
            assert q.mean == pytest.approx(p.mean, rel=1e-12), name
            assert q.m2 == pytest.approx(p.m2, rel=1e-9), name
        else:
            assert isinstance(p, CategoricalProfile) and isinstance(q, CategoricalProfile)
            assert q.categories == p.categories, name
            np.testing.assert_array_equal(q.counts, p.counts, err_msg=name)
            assert q.missing == p.missing, name
            assert q.unseen_names == p.unseen_names, name


def assert_same_verdicts(got: DatasetDrift, expected: DatasetDrift) -> None:
    assert (got.severity, got.drifted_features, got.n_tested) == (
        expected.severity,
        expected.drifted_features,
        expected.n_tested,
    )
    for g, e in zip(got.features, expected.features, strict=True):
        assert (g.feature, g.kind, g.method, g.severity, g.drifted, g.effect_name) == (
            e.feature,
            e.kind,
            e.method,
            e.severity,
            e.drifted,
            e.effect_name,
        )
        assert (g.n_reference, g.n_current) == (e.n_reference, e.n_current)
        for field in ("statistic", "p_value", "p_adjusted", "effect_size"):
            a, b = getattr(g, field), getattr(e, field)
            assert (a is None) == (b is None), (g.feature, field)
            if a is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (g.feature, field)


def assert_same_comparison(got: Comparison, expected: Comparison) -> None:
    assert got.status == expected.status
    assert_same_counts(got.reference, expected.reference)
    assert_same_counts(got.current, expected.current)
    assert_same_verdicts(got.data_drift, expected.data_drift)
    assert got.quality.severity == expected.quality.severity
    assert [(f.check, f.feature, f.passed) for f in got.quality.findings] == [
        (f.check, f.feature, f.passed) for f in expected.quality.findings
    ]
    assert (got.prediction_drift is None) == (expected.prediction_drift is None)
    if got.prediction_drift is not None and expected.prediction_drift is not None:
        assert got.reference_outputs is not None and expected.reference_outputs is not None
        assert got.current_outputs is not None and expected.current_outputs is not None
        assert_same_counts(got.reference_outputs, expected.reference_outputs)
        assert_same_counts(got.current_outputs, expected.current_outputs)
        assert_same_verdicts(got.prediction_drift, expected.prediction_drift)
