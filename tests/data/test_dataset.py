"""Drift over files and Parquet datasets read batch by batch: the counts of driftline.compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import driftline
from driftline.data.dataset import open_dataset
from driftline.errors import DataError
from tests.support.datasets import assert_same_comparison, dataset_rows, write_parts


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


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_arrow_strings_hold_the_same_values_without_python_strings(
    tmp_path: Path, suffix: str
) -> None:
    """What the profile builders read: string columns as Arrow arrays (Parquet's dictionary
    pages undecoded), every value -- missing, non-ASCII, split across files -- as in a plain
    read, and the numbers untouched."""
    rng = np.random.default_rng(22)
    rows = dataset_rows(rng, 3_000)
    rows.loc[rows.index[::97], "region"] = "zürich, ça va"
    write_parts(rows, tmp_path / "parts", [1_200, 1_800], suffix)
    data = open_dataset(tmp_path / "parts")
    columns = ["region", "income"]
    plain = pd.concat(list(data.batches(columns, 500)), ignore_index=True)
    arrow = list(data.batches(columns, 500, arrow_strings=True))
    assert all(isinstance(b["region"].dtype, pd.ArrowDtype) for b in arrow)
    assert all(b["income"].dtype == np.float64 for b in arrow)
    if suffix == "parquet":  # the dictionary pages are kept as they are
        assert pa.types.is_dictionary(arrow[0]["region"].dtype.pyarrow_dtype)
    joined = pd.concat(arrow, ignore_index=True)
    assert joined["region"].astype(object).where(joined["region"].notna(), None).tolist() == (
        plain["region"].where(plain["region"].notna(), None).tolist()
    )
    np.testing.assert_array_equal(joined["income"].to_numpy(), plain["income"].to_numpy())
    whole = data.read(columns, arrow_strings=True)
    assert isinstance(whole["region"].dtype, pd.ArrowDtype)
    assert whole["region"].value_counts().to_dict() == plain["region"].value_counts().to_dict()
    assert whole["region"].isna().sum() == plain["region"].isna().sum()
    if suffix == "parquet":  # (Arrow reads an empty CSV field as "", not as missing)
        assert whole["region"].isna().sum() > 0


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
