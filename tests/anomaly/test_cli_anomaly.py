"""`driftline anomaly ...` and `driftline host ...` through Typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftline.anomaly.dataset import KIND_COLUMN, LABEL_COLUMN, METRIC_COLUMNS
from driftline.cli.anomaly import anomaly_app, host_app
from driftline.models.bundle import MODEL_FILE

runner = CliRunner()


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


def ok(app: object, *args: str) -> str:
    result = runner.invoke(app, list(args))  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anomaly") / "host.csv"
    out = ok(anomaly_app, "generate-dataset", "-o", str(path), "--rows", "4000", "--seed", "1")
    assert "4,000 rows written" in out and "memory_leak" in out
    return path


def test_generate_dataset_writes_labeled_metrics(dataset: Path) -> None:
    frame = pd.read_csv(dataset)
    assert len(frame) == 4_000
    assert {*METRIC_COLUMNS, LABEL_COLUMN, KIND_COLUMN} <= set(frame.columns)
    assert 0.02 < frame[LABEL_COLUMN].mean() < 0.05


def test_compare_prints_the_metrics_side_by_side(dataset: Path) -> None:
    out = ok(anomaly_app, "compare", str(dataset), "--kind", "iforest", "--kind", "rf")
    for text in ("precision", "recall", "F1", "ROC AUC", "iforest", "anomaly_rf"):
        assert text in out
    assert "labeled anomalies" in flat(out)


def test_train_then_predict(dataset: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    out = ok(
        anomaly_app, "train", str(dataset), "--kind", "iforest", "-o", str(bundle), "--no-register"
    )
    for text in ("Precision", "Recall", "F1", "ROC AUC", "Recall by anomaly kind", "saved"):
        assert text in out
    assert (bundle / MODEL_FILE).exists() and (bundle / "schema.json").exists()

    scored = tmp_path / "scored.parquet"
    out = ok(anomaly_app, "predict", str(dataset), "-o", str(scored), "--bundle", str(bundle))
    assert "rows flagged by iforest" in out
    frame = pd.read_parquet(scored)
    assert set(frame["predicted_anomaly"].unique()) <= {0, 1}
    assert frame["predicted_anomaly"].sum() > 0
    flagged = frame["predicted_anomaly"] == 1
    assert frame.loc[flagged, "anomaly_score"].min() > frame.loc[~flagged, "anomaly_score"].max()
    assert frame.loc[flagged, LABEL_COLUMN].mean() > 0.5  # most flags are real anomalies


def test_train_without_labels_and_errors(dataset: Path, tmp_path: Path) -> None:
    unlabeled = tmp_path / "unlabeled.parquet"
    pd.read_csv(dataset).drop(columns=[LABEL_COLUMN, KIND_COLUMN]).to_parquet(unlabeled)
    out = ok(anomaly_app, "train", str(unlabeled), "-o", str(tmp_path / "b"), "--no-register")
    assert "no evaluation" in out and "saved iforest bundle" in out

    result = runner.invoke(anomaly_app, ["train", str(unlabeled), "--kind", "rf"])
    assert result.exit_code == 1 and "needs labeled anomalies" in flat(result.output)
    result = runner.invoke(anomaly_app, ["train", str(dataset), "--kind", "svm"])
    assert result.exit_code == 1 and "detector kind must be one of" in flat(result.output)
    result = runner.invoke(
        anomaly_app, ["predict", str(dataset), "-o", "x.csv", "--bundle", str(tmp_path / "none")]
    )
    assert result.exit_code == 1 and "not a model bundle" in flat(result.output)


def test_train_lstm_without_torch_names_the_extra(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("driftline.anomaly.lstm.torch_available", lambda: False)
    result = runner.invoke(anomaly_app, ["train", str(dataset), "--kind", "lstm"])
    assert result.exit_code == 1
    assert "pip install 'driftline[lstm]'" in flat(result.output)


def test_host_sample_prints_writes_and_scores(dataset: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    ok(anomaly_app, "train", str(dataset), "-o", str(bundle), "--no-register")
    out_file = tmp_path / "host.csv"
    out = ok(
        host_app, "sample", "--interval", "0.05", "--count", "2", "-o", str(out_file),
        "--bundle", str(bundle),
    )
    assert out.count("cpu") == 2 and "score" in out
    frame = pd.read_csv(out_file)
    assert len(frame) == 2 and set(METRIC_COLUMNS) <= set(frame.columns)
    assert {"anomaly_score", "predicted_anomaly"} <= set(frame.columns)


def test_host_load() -> None:
    out = ok(host_app, "load", "--cpu", "300ms", "--cores", "1")
    assert "busy 1 core(s)" in out and "load done" in out
    result = runner.invoke(host_app, ["load", "--cpu", "soon"])
    assert result.exit_code == 1 and "--cpu must be a duration" in flat(result.output)
