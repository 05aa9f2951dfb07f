from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings
from driftline.data import generate_loans
from driftline.store import open_store, queries

runner = CliRunner()


def invoke(settings: Settings, *args: str) -> str:
    result = runner.invoke(app, ["--home", str(settings.home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_train_list_promote_rollback(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    generate_loans(1_200, seed=1).to_csv(data, index=False)
    out = invoke(settings, "train", str(data), "--target", "default", "--model", "logreg")
    assert "Cohen's kappa" in out and "ROC AUC" in out and "version 1" in out
    assert "Confusion matrix" in out
    assert "Macro precision" in out and "Macro recall" in out and "Per class" in out
    parquet = tmp_path / "loans.parquet"
    generate_loans(1_200, seed=2).to_parquet(parquet)
    out = invoke(settings, "train", str(parquet), "-t", "default", "-m", "rf")
    assert "version 2" in out and "champion is 1" in out
    out = invoke(settings, "models", "list")
    assert "champion" in out and "rf" in out and "logreg" in out
    assert "1 → 2" in invoke(settings, "models", "promote", "2", "--reason", "better")
    assert "2 → 1" in invoke(settings, "rollback")
    history = invoke(settings, "models", "history")
    assert "better" in history and "rollback" in history


def test_predict_file_and_import_labels(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    generate_loans(1_000, seed=1).to_csv(data, index=False)
    invoke(settings, "train", str(data), "-t", "default", "-m", "logreg")
    score_in = tmp_path / "new.csv"
    frame = generate_loans(300, seed=5, with_target=False)
    frame.insert(0, "flow_id", [f"f{i}" for i in range(300)])
    frame.to_csv(score_in, index=False)
    out_path = tmp_path / "scored.parquet"
    invoke(
        settings, "predict", str(score_in), "-o", str(out_path), "--log", "--id-column", "flow_id"
    )
    scored = pd.read_parquet(out_path)
    assert {"prediction", "confidence", "proba_0", "proba_1"} <= set(scored.columns)
    assert len(scored) == 300 and (scored["proba_0"] + scored["proba_1"]).round(9).eq(1).all()
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": [f"f{i}" for i in range(100)], "label": [1.0] * 100}).to_csv(
        labels, index=False
    )
    assert "imported 100 labels" in invoke(settings, "labels", "import", str(labels))
    store = open_store(settings.database_url)
    with store.sessions() as session:
        labeled = queries.labeled_predictions(session=session)
    store.dispose()
    assert len(labeled) == 100 and {r["label"] for r in labeled} == {"1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "missing.csv", "-t", "y"], "no such file"),
        (["models", "promote", "5"], "no version 5"),
        (["rollback"], "no earlier champion"),
    ],
)
def test_errors_are_one_clear_line(settings: Settings, args: list[str], message: str) -> None:
    if args[0] != "train":
        data = settings.home / "d.csv"
        generate_loans(600, seed=1).to_csv(data, index=False)
        invoke(settings, "train", str(data), "-t", "default", "-m", "logreg")
    result = runner.invoke(app, ["--home", str(settings.home), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
