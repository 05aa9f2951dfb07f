from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings
from driftline.data import generate_loans
from driftline.loop import GatePolicy, RolloutPolicy, SloPolicy, TriggerPolicy
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


def test_home_is_accepted_after_the_subcommand_too(tmp_path: Path) -> None:
    """`driftline models list --home X` behaves as `driftline --home X models list` (the real
    entry point, as a user runs it)."""
    import subprocess
    import sys

    home = tmp_path / "after"
    out = subprocess.run(
        [sys.executable, "-m", "driftline", "models", "list", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "no versions yet" in out.stdout
    assert (home / "driftline.db").exists()


def test_each_invocation_sizes_the_tables_for_its_own_output(tmp_path: Path) -> None:
    """The consoles are built once per process; every invocation re-reads COLUMNS and its
    streams (a test runner set COLUMNS=80 before the import, and a later CliRunner's 200 was
    ignored: tables cut at 80 columns)."""
    from driftline.cli import common

    common.console.width = 40  # as if built under another environment
    common.err_console.width = 40
    for env, expected in (({"COLUMNS": "132"}, 132), ({"COLUMNS": None}, common.PIPED_WIDTH)):
        result = CliRunner(env=env).invoke(app, ["--home", str(tmp_path), "models", "list"])
        assert result.exit_code == 0, result.output
        assert (common.console.width, common.err_console.width) == (expected, expected)


def test_tables_are_not_cut_when_piped_and_exit_codes_do_not_collide(tmp_path: Path) -> None:
    """Piped output keeps whole words ("wasserstein_normalized", not "wasserst…"); a critical
    check exits 3 and a warning 4, never Click's usage code 2."""
    import subprocess
    import sys

    import numpy as np
    import pandas as pd

    from driftline.cli.common import ExitCode

    assert len(set(ExitCode)) == len(ExitCode.__members__)
    assert ExitCode.USAGE == 2 and 2 not in (ExitCode.WARNING, ExitCode.CRITICAL)
    rng = np.random.default_rng(0)
    def rows(n: int, shift: float) -> pd.DataFrame:
        # One feature of three moves: below the dataset share rule, so a small move is a warning.
        return pd.DataFrame(
            {
                "debt_to_income_ratio": rng.normal(shift, 1, n),
                "age": rng.normal(40, 10, n),
                "income": rng.normal(50, 10, n),
            }
        )

    reference = rows(5_000, 0.0)
    reference.to_csv(tmp_path / "ref.csv", index=False)
    cases = {"critical": 0.5, "warning": 0.1}
    for status, shift in cases.items():
        current = rows(20_000, shift)
        current.to_csv(tmp_path / f"{status}.csv", index=False)
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    for status in cases:
        out = subprocess.run(
            [sys.executable, "-m", "driftline", "check", "--reference", str(tmp_path / "ref.csv"),
             "--current", str(tmp_path / f"{status}.csv")],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert out.returncode == ExitCode[status.upper()], out.stdout + out.stderr
        assert "wasserstein_normalized" in out.stdout
        assert "debt_to_income_ratio" in out.stdout
        assert "…" not in out.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "driftline", "check", "--no-such-option"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert usage.returncode == ExitCode.USAGE


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("DRIFTLINE_GATE_MAX_LATENCY_RATIO", "0.5", ["retrain", "--force"]),
        ("DRIFTLINE_GATE_MIN_GAIN", "2", ["retrain", "--force"]),
        ("DRIFTLINE_CANARY_SHARE", "1.5", ["rollout", "step"]),
        ("DRIFTLINE_SLO_MAX_ERROR_RATE", "-0.1", ["rollout", "step"]),
    ],
)
def test_a_bad_gate_or_rollout_setting_is_a_clear_error_not_a_traceback(
    settings: Settings, variable: str, value: str, args: list[str]
) -> None:
    """The commands that build the gate and rollout policies refuse a bad value with a message
    naming the setting and the driftline error exit code."""
    from driftline.cli.common import ExitCode

    result = runner.invoke(app, ["--home", str(settings.home), *args], env={variable: value})
    assert result.exit_code == ExitCode.ERROR, result.output
    assert "bad configuration" in result.output
    assert variable.removeprefix("DRIFTLINE_").lower() in result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not an escaped exception
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: GatePolicy(max_latency_ratio=0.5), "max_latency_ratio must be >= 1, got 0.5"),
        (lambda: RolloutPolicy(canary_share=1.5), r"canary_share must be in (0, 1), got 1.5"),
        (lambda: SloPolicy(noise_z=-1), "noise_z must be >= 0, got -1"),
        (lambda: TriggerPolicy(min_new_labels=0), "min_new_labels must be >= 1, got 0"),
    ],
)
def test_a_policy_refusal_inside_a_command_is_one_line(
    build: Callable[[], object], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The policies raise a driftline error, so a command that builds one with a bad value
    (settings made without validation, a library caller) ends on one line and exit code 1."""
    from driftline.cli.common import ExitCode, handle_errors

    @handle_errors
    def command() -> None:
        build()

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == ExitCode.ERROR
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
