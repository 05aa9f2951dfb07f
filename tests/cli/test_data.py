"""`driftline data generate|inject` and `driftline simulate` against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

import driftline
from driftline.cli import app
from driftline.config import Settings
from driftline.data.synthetic import TARGET, generate_loans
from driftline.models.bundle import ModelBundle
from driftline.registry import Registry
from driftline.store import open_store
from tests.support.servers import serve_subprocess

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_generate_loans_is_seeded_and_writes_csv_or_parquet(tmp_path: Path) -> None:
    code, out = _run("data", "generate", "loans", "--rows", "500", "-o", str(tmp_path / "a.csv"))
    assert code == 0, out
    frame = pd.read_csv(tmp_path / "a.csv")
    expected = generate_loans(500, seed=0)
    assert len(frame) == 500
    assert list(frame.columns) == list(expected.columns)
    assert TARGET in frame.columns
    code, out = _run(
        "data",
        "generate",
        "loans",
        "--rows",
        "500",
        "--no-target",
        "-o",
        str(tmp_path / "b.parquet"),
    )
    assert code == 0, out
    parquet = pd.read_parquet(tmp_path / "b.parquet")
    assert TARGET not in parquet.columns
    pd.testing.assert_series_equal(parquet["income"], expected["income"], check_names=False)


def test_inject_mean_shift_is_seen_as_drift_on_that_feature(tmp_path: Path) -> None:
    source = tmp_path / "loans.csv"
    _run("data", "generate", "loans", "--rows", "4000", "--seed", "3", "-o", str(source))
    code, out = _run(
        "data", "inject", str(source), "-o", str(tmp_path / "drifted.csv"),
        "--kind", "mean_shift", "--feature", "income", "--strength", "0.5",
    )  # fmt: skip
    assert code == 0, out
    before, after = pd.read_csv(source), pd.read_csv(tmp_path / "drifted.csv")
    report = driftline.compare(before, after, target=TARGET)
    assert report.drifted_features == ("income",)
    assert (
        (after.drop(columns="income").fillna(-1) == before.drop(columns="income").fillna(-1))
        .all()
        .all()
    )


def test_inject_concept_redraws_labels_only(tmp_path: Path) -> None:
    source = tmp_path / "loans.parquet"
    _run("data", "generate", "loans", "--rows", "3000", "-o", str(source))
    code, out = _run(
        "data", "inject", str(source), "-o", str(tmp_path / "c.parquet"), "--kind", "concept"
    )
    assert code == 0, out
    before, after = pd.read_parquet(source), pd.read_parquet(tmp_path / "c.parquet")
    features = [c for c in before.columns if c != TARGET]
    pd.testing.assert_frame_equal(before[features], after[features])
    assert (before[TARGET] != after[TARGET]).mean() > 0.05


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "sideways", "--feature", "income"], "--kind must be one of"),
        (["--kind", "mean_shift"], "needs --feature"),
        (["--kind", "mean_shift", "--feature", "salary"], "'salary' is not a column"),
    ],
)
def test_inject_errors_name_the_problem(tmp_path: Path, args: list[str], message: str) -> None:
    source = tmp_path / "loans.csv"
    _run("data", "generate", "loans", "--rows", "50", "-o", str(source))
    code, out = _run("data", "inject", str(source), "-o", str(tmp_path / "x.csv"), *args)
    assert code == 1
    assert message in " ".join(out.split())


def test_generate_unknown_dataset(tmp_path: Path) -> None:
    code, out = _run("data", "generate", "houses", "-o", str(tmp_path / "x.csv"))
    assert code == 1
    assert "unknown data set 'houses'" in out


@pytest.mark.slow
def test_simulate_drives_a_real_server(settings: Settings, trained_bundle: ModelBundle) -> None:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    with serve_subprocess(settings.home) as url:
        code, out = _run(
            "simulate", "--url", url, "--rate", "25", "--duration", "3", "--drift-at", "1.5",
            "--label-delay", "0.2", "--json",
        )  # fmt: skip
        assert code == 0, out
        totals = json.loads(out)
        assert totals["sent"] > 0
        assert totals["answered"] == totals["sent"]
        assert totals["errors"] == 0
        assert totals["labels_sent"] == totals["answered"]
        assert totals["drift_started_s"] is not None
        assert totals["model_versions"] == [1]
        page = httpx.get(f"{url}/predictions", params={"limit": 1000}, timeout=10).json()
    ids = {p["request_id"] for p in page["items"]}
    assert len(ids) == totals["sent"]
    assert all(i.startswith("sim-7-") for i in ids)
    assert all(p["label"] is not None for p in page["items"])


def test_simulate_refuses_bad_options(tmp_path: Path) -> None:
    code, out = _run(
        "simulate", "--url", "http://127.0.0.1:9", "--duration", "5", "--drift-at", "9"
    )
    assert code == 1
    assert "--drift-at must be in" in out
    code, out = _run("simulate", "--url", "127.0.0.1:9", "--duration", "1")
    assert code == 1
    assert "must start with http://" in out
