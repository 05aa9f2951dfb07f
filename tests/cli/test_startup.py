"""`driftline --help` and every command's `--help` start at once: they import none of the heavy
libraries (issue 14, point 5a). The check is on what gets imported, not on a wall clock, so it
holds on a busy machine; `python -X importtime -m driftline --help` shows the time itself."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import typer

from driftline.cli import app

#: What a help screen must not load: each costs from a tenth of a second (numpy) to seconds
#: (scikit-learn ensembles, MLflow, torch) on an idle machine.
HEAVY = (
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "sklearn",
    "river",
    "mlflow",
    "torch",
    "plotly",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "redis",
    "prometheus_client",
    "psutil",
    "joblib",
    "ray",
    "confluent_kafka",
    "opentelemetry",
)

#: Runs the CLI's entry point once per argument list, in one interpreter, then prints which
#: heavy top-level packages were imported along the way.
_PROBE = """
import json, sys
from driftline.cli import main
arg_lists, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for args in arg_lists:
    sys.argv = ["driftline", *args]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``group`` (Typer's Click groups have ``commands``)."""
    paths: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        paths.append(path)
        paths += _command_paths(command, path) if hasattr(command, "commands") else []
    return paths


def _heavy_imports(*arg_lists: list[str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(arg_lists), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_top_level_help_imports_no_heavy_library() -> None:
    assert _heavy_imports(["--help"]) == []


def test_every_commands_help_imports_no_heavy_library() -> None:
    """All of them in one interpreter: whatever any help screen imports shows up here."""
    paths = _command_paths(typer.main.get_command(app))
    assert {("check",), ("db", "upgrade"), ("host", "watch"), ("models", "list")} <= set(paths)
    assert _heavy_imports(*[[*path, "--help"] for path in paths]) == []


def test_the_help_text_survives_the_lazy_imports() -> None:
    """Typer still reads each command's docstring and options (the imports moved, not the
    documentation)."""
    from typer.testing import CliRunner

    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in ("check", "train", "serve", "anomaly", "host", "models", "db", "data"):
        assert command in top.output
    check = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert check.exit_code == 0
    assert "Run the monitor once over WINDOW" in check.output
    assert "--batch-rows" in check.output and "131072" in check.output
    inject = runner.invoke(app, ["data", "inject", "--help"], env={"COLUMNS": "200"})
    assert "mean_shift" in inject.output and "concept" in inject.output


def test_light_copies_of_defaults_agree_with_their_source() -> None:
    """The few defaults a help screen shows that live in heavy modules are repeated in light
    ones; they must not drift apart."""
    from driftline.anomaly.watcher import HOST_DRIFT_POLICY
    from driftline.cli.anomaly import DEFAULT_DRIFT_THRESHOLD

    assert HOST_DRIFT_POLICY.numeric_critical == DEFAULT_DRIFT_THRESHOLD
