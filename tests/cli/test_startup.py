"""`driftline --help` and every command's `--help` start at once: they import none of the heavy
libraries, nothing beyond what Typer itself loads for the same screen, and driftline's own
modules cost a small share of the import time (issue 14, point 5a). The checks are on what gets
imported and on import times measured within one run against Typer's own (`python -X
importtime`), never on a wall clock, so they hold on a busy machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

import driftline
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

#: The smallest Typer app shaped like driftline's: a root callback with an option, a command and
#: a nested group, and help text beyond ASCII (Rich loads its character width tables for it).
#: Its help screens load what Typer and Rich need for any app, whatever driftline does: the
#: baseline of the tests below.
_BARE_APP = """
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()
group = typer.Typer()
app.add_typer(group, name="group")


@app.callback()
def root(home: Annotated[Path | None, typer.Option(help="A folder.")] = None) -> None:
    \"\"\"A bare app.\"\"\"


@app.command()
def hello(count: Annotated[int, typer.Option(min=1, help="How many.")] = 1) -> None:
    \"\"\"Say hello — once or more, × count.\"\"\"


@group.command()
def leaf(path: Path = Path(".")) -> None:
    \"\"\"A nested command.\"\"\"


def main() -> None:
    app(prog_name="bare")
"""

#: The bare app's help screens, one of each shape driftline has.
_BARE_HELP = (["--help"], ["hello", "--help"], ["group", "leaf", "--help"])

#: Runs an app's ``main()`` once per argument list in one interpreter, then prints every module
#: loaded: ``import APP_MODULE`` comes from ``sys.argv[1]``, its folder from ``sys.argv[2]``.
_MODULES_PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[2])
main = importlib.import_module(sys.argv[1]).main
for args in json.loads(sys.argv[3]):
    sys.argv = ["app", *args]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
print(json.dumps(sorted(sys.modules)))
"""

#: Of the import time of `driftline check --help` (the command with the most options), the
#: share driftline adds may be at most this fraction of what Typer, Rich and pydantic take in
#: the same run. Measured at load 5 to 11 on 2 cores: 0.05-0.13 per run; 0.29-0.55 while the
#: root callback built the settings and the CLI modules imported rich.progress at the top. The
#: slack absorbs a preemption landing on driftline's few imports.
OWN_IMPORT_BUDGET = 0.2


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


class Run:
    """What one interpreter loaded for a list of help screens: ``modules`` from ``sys.modules``
    and, from ``-X importtime``, the self import time in µs of every import it tried."""

    def __init__(self, app_module: str, folder: Path, *arg_lists: list[str]) -> None:
        probe = [_MODULES_PROBE, app_module, str(folder), json.dumps(arg_lists)]
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", *probe],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        self.modules: set[str] = set(json.loads(out.stdout.strip().splitlines()[-1]))
        self.times: dict[str, int] = {}
        for line in out.stderr.splitlines():
            # "import time: self [us] | cumulative | imported package", names indented by depth
            if line.startswith("import time:") and not line.endswith("imported package"):
                own, _, name = line.removeprefix("import time:").split("|")
                self.times[name.strip()] = int(own)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """What the bare Typer app loads for its help screens."""
    folder = tmp_path_factory.mktemp("bare_typer")
    (folder / "bare_typer_app.py").write_text(_BARE_APP)
    run = Run("bare_typer_app", folder, *_BARE_HELP)
    assert {"typer", "rich.console", "pydantic"} <= run.modules  # it did render help screens
    return run


def _driftline(*arg_lists: list[str]) -> Run:
    return Run("driftline.cli", Path(driftline.__file__).parents[1], *arg_lists)


def _beyond_bare(module: str, bare: set[str] | dict[str, int]) -> bool:
    """Whether ``module`` is driftline's doing: the bare app did not load it, and it is not
    part of Typer (which loads parts of itself by parameter type)."""
    return module not in bare and module.split(".", maxsplit=1)[0] != "typer"


def test_help_screens_load_nothing_typer_does_not(bare: Run) -> None:
    """Beyond what a bare Typer app loads for the same kinds of help screen, every help screen
    of driftline loads only driftline's own modules and the standard library: no settings
    library, no progress bars, nothing that a later import adds by accident."""
    paths = _command_paths(typer.main.get_command(app))
    run = _driftline(["--help"], ["--version"], *[[*path, "--help"] for path in paths])
    assert {"driftline.cli.monitor", "driftline.cli.anomaly"} <= run.modules
    extra = sorted(
        m
        for m in run.modules
        if _beyond_bare(m, bare.modules)
        and m.split(".", maxsplit=1)[0] not in {"driftline", *sys.stdlib_module_names}
    )
    assert extra == []


def test_driftlines_own_imports_are_a_small_share_of_typers(bare: Run) -> None:
    """Import time of what driftline adds (its own modules and whatever else the bare app does
    not load) against that of the modules the bare app loads too (Typer, Rich, pydantic), both
    measured in the same run: load on the machine slows both. Best of three runs: noise only
    ever adds time."""
    shares = []
    for _ in range(3):
        times = _driftline(["check", "--help"]).times
        assert "driftline.cli.monitor" in times and "typer" in times
        own = sum(us for m, us in times.items() if _beyond_bare(m, bare.times))
        base = sum(us for m, us in times.items() if m in bare.times)
        shares.append(own / base)
        if shares[-1] <= OWN_IMPORT_BUDGET:
            break
    assert min(shares) <= OWN_IMPORT_BUDGET, shares


def test_version_prints_the_packages_version() -> None:
    from typer.testing import CliRunner

    from driftline import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"driftline {__version__}"


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
