"""Drift over files and Parquet datasets read batch by batch: the counts of driftline.compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import driftline
from driftline.comparison import Comparison
from driftline.data.dataset import open_dataset
from driftline.drift.decision import DatasetDrift
from driftline.errors import DataError
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


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A reference dataset (directory of Parquet parts) and a current one (glob of parts)."""
    rng = np.random.default_rng(20)
    root = tmp_path_factory.mktemp("datasets")
    reference, current = dataset_rows(rng, 9_000), dataset_rows(rng, 6_000, shift=0.3)
    write_parts(reference, root / "reference", [1, 2_999, 4_000, 2_000], "parquet")
    write_parts(current, root / "current", [2_500, 3_500], "parquet")
    return {"root": root, "reference": reference, "current": current}


def test_a_dataset_read_in_batches_counts_what_compare_counts(datasets: dict[str, Any]) -> None:
    root: Path = datasets["root"]
    expected = driftline.compare(
        datasets["reference"], datasets["current"], prediction="prediction", score="score"
    )
    got = driftline.compare_datasets(
        root / "reference",
        str(root / "current" / "part-*.parquet"),
        prediction="prediction",
        score="score",
        batch_rows=700,
    )
    assert_same_comparison(got, expected)
    assert got.status == "critical"
    assert set(got.drifted_features) >= {"income", "debt"}
    assert got.current.features["region"].unseen_names == {"atlantis": pytest.approx(300, rel=0.2)}  # type: ignore[union-attr]


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch_rows=st.integers(min_value=97, max_value=4_000))
def test_the_counts_do_not_depend_on_the_batch_size(
    datasets: dict[str, Any], batch_rows: int
) -> None:
    root: Path = datasets["root"]
    reference = datasets["reference"].iloc[:3_000]
    current = datasets["current"].iloc[:2_500]
    got = driftline.compare_datasets(
        root / "reference" / "part-00[01].parquet",
        root / "current" / "part-000.parquet",
        batch_rows=batch_rows,
    )
    assert_same_comparison(got, driftline.compare(reference, current))


def test_csv_datasets_and_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from driftline.cli import app

    rng = np.random.default_rng(21)
    reference, current = dataset_rows(rng, 3_000), dataset_rows(rng, 2_000, shift=0.5)
    write_parts(reference, tmp_path / "ref", [1_000, 2_000], "csv")
    write_parts(current, tmp_path / "cur", [500, 700, 800], "csv")
    ref_data, cur_data = open_dataset(tmp_path / "ref"), open_dataset(tmp_path / "cur/*.csv")
    assert (ref_data.format, len(ref_data.paths), len(cur_data.paths)) == ("csv", 2, 3)
    # CSV text is parsed by Arrow: compare with the same rows parsed the same way.
    columns = ref_data.columns
    expected = driftline.compare(
        ref_data.read(columns), cur_data.read(columns), prediction="prediction", score="score"
    )
    args = [
        "--home",
        str(tmp_path / "home"),
        "check",
        "--reference",
        str(tmp_path / "ref"),
        "--current",
        str(tmp_path / "cur" / "*.csv"),
        "--prediction",
        "prediction",
        "--score",
        "score",
        "--batch-rows",
        "333",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    body = json.loads(result.output)
    assert body["status"] == expected.status == "critical"
    assert body["rows"] == 2_000
    assert body["data_drift"]["n_reference_rows"] == 3_000
    assert [(f["feature"], f["severity"]) for f in body["data_drift"]["features"]] == [
        (f.feature, f.severity) for f in expected.data_drift.features
    ]
    assert body["prediction_drift"]["severity"] == expected.prediction_drift.severity  # type: ignore[union-attr]
    assert not (tmp_path / "home").exists()


def test_clear_errors_for_datasets(tmp_path: Path, datasets: dict[str, Any]) -> None:
    root: Path = datasets["root"]
    with pytest.raises(DataError, match="no such file, directory or glob match"):
        open_dataset(tmp_path / "nothing")
    with pytest.raises(DataError, match=r"no \.csv or \.parquet files"):
        open_dataset(tmp_path / "*.parquet")
    (tmp_path / "mixed").mkdir()
    datasets["reference"].iloc[:10].to_csv(tmp_path / "mixed" / "a.csv", index=False)
    datasets["reference"].iloc[:10].to_parquet(tmp_path / "mixed" / "b.parquet")
    with pytest.raises(DataError, match="mixes CSV and Parquet"):
        open_dataset(tmp_path / "mixed")
    datasets["current"].drop(columns=["region"]).to_parquet(tmp_path / "cur.parquet")
    with pytest.raises(DataError, match=r"current data lacks column\(s\) \['region'\]"):
        driftline.compare_datasets(root / "reference", tmp_path / "cur.parquet")
    with pytest.raises(DataError, match="engine must be"):
        driftline.compare_datasets(root / "reference", root / "current", engine="spark")  # type: ignore[arg-type]
