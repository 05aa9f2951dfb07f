"""Ray Data counts a dataset per block; merged, its profiles equal the single-process ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import driftline
from tests.support.datasets import assert_same_comparison, dataset_rows, write_parts


@pytest.mark.slow
@pytest.mark.timeout(600)  # a hang guard: ~70 s with setup beside stress-ng --cpu 2
def test_ray_counts_every_block_as_the_single_process_path(ray_local: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from driftline.cli import app

    rng = np.random.default_rng(30)
    reference, current = dataset_rows(rng, 12_000), dataset_rows(rng, 8_000, shift=0.3)
    write_parts(reference, tmp_path / "reference", [3_000, 3_000, 3_000, 2_999, 1], "parquet")
    write_parts(current, tmp_path / "current", [4_000, 4_000], "parquet")
    local = driftline.compare_datasets(
        tmp_path / "reference",
        tmp_path / "current",
        prediction="prediction",
        score="score",
        batch_rows=1_000,
    )
    on_ray = driftline.compare_datasets(
        tmp_path / "reference",
        tmp_path / "current",
        prediction="prediction",
        score="score",
        engine="ray",
    )
    assert_same_comparison(on_ray, local)
    assert_same_comparison(
        on_ray, driftline.compare(reference, current, prediction="prediction", score="score")
    )
    assert on_ray.status == "critical"

    # The CLI on the Ray instance already running in this process; CSV read by Ray's reader.
    write_parts(reference, tmp_path / "ref-csv", [6_000, 6_000], "csv")
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(tmp_path / "home"),
            "check",
            "--reference",
            str(tmp_path / "ref-csv"),
            "--current",
            str(tmp_path / "current" / "*.parquet"),
            "--engine",
            "ray",
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output
    body = json.loads(result.output)
    expected = driftline.compare_datasets(tmp_path / "ref-csv", tmp_path / "current")
    assert body["rows"] == 8_000
    assert [
        (f["feature"], f["severity"], f["n_reference"]) for f in body["data_drift"]["features"]
    ] == [(f.feature, f.severity, f.n_reference) for f in expected.data_drift.features]
