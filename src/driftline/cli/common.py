"""What every CLI command shares: the console, settings, opening the store and registry, and
turning driftline errors into a clear message and exit code 1.

The CLI modules import heavy libraries (pandas, scikit-learn, MLflow, SQLAlchemy, ...) inside
the commands that use them, each marked ``# noqa: PLC0415 — lazy: fast --help``: help screens
and light commands start at once (tests/cli/test_startup.py checks what they import)."""

from __future__ import annotations

import enum
import functools
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from driftline.errors import ConfigurationError, DriftlineError

if TYPE_CHECKING:
    from driftline.config import Settings
    from driftline.registry import Registry
    from driftline.store import Store

__all__ = [
    "ExitCode",
    "JsonFlag",
    "State",
    "console",
    "fail",
    "format_ts",
    "handle_errors",
    "plain_json",
    "print_json",
    "state",
]


class ExitCode(enum.IntEnum):
    """Exit codes of every command; none collides with Click's usage error (2)."""

    OK = 0
    ERROR = 1  # a driftline error: one red line says what
    USAGE = 2  # Click: unknown option, bad value
    CRITICAL = 3  # `check`: critical · `retrain`: the gate rejected the challenger
    WARNING = 4  # `check`: warning
    NOT_TRIGGERED = 5  # `retrain --if-triggered`: the trigger said no


#: Width of tables when the output is a pipe or a file (Rich would cut them at 80 columns,
#: "wasserst…"); a terminal keeps its own width, and COLUMNS always wins.
PIPED_WIDTH = 160


def _width_for(stream: Any) -> int:
    """COLUMNS if set, else the terminal's width, else :data:`PIPED_WIDTH` for a pipe or file."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if hasattr(stream, "isatty") and stream.isatty():
        return shutil.get_terminal_size().columns
    return PIPED_WIDTH


console = Console(width=_width_for(sys.stdout))
err_console = Console(stderr=True, width=_width_for(sys.stderr))


def fit_consoles() -> None:
    """Size both consoles for this invocation's streams and environment: they are built when
    the module is first imported, and a process may run many invocations (a test runner, an
    embedding program) whose COLUMNS or streams differ from that moment's."""
    console.width = _width_for(sys.stdout)
    err_console.width = _width_for(sys.stderr)


P = ParamSpec("P")
R = TypeVar("R")


class State:
    """Made in the CLI callback; builds its parts on first use, so that a help screen (the
    callback runs before a subcommand's ``--help`` is seen) and the commands that need no
    settings never load pydantic-settings, the store or the registry."""

    def __init__(self, settings: Settings | None = None, *, home: Path | None = None) -> None:
        self._settings = settings
        self._home = home
        self._store: Store | None = None
        self._registry: Registry | None = None

    @property
    def settings(self) -> Settings:
        """The settings (``--home`` over the environment); a bad value ends the command with
        "bad configuration" and exit code 1, and tracing starts here when it is configured."""
        if self._settings is None:
            self._settings = _load_settings(self._home)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            from driftline.store import StoreTimeouts, open_store  # noqa: PLC0415 — lazy: fast --help

            self.settings.ensure_home()
            self._store = open_store(
                self.settings.database_url, timeouts=StoreTimeouts.from_settings(self.settings)
            )
        return self._store

    def close(self) -> None:
        """Close the store's connections if a command opened them (a PostgreSQL pool left to
        the garbage collector is closed late, with a ResourceWarning per connection)."""
        if self._store is not None:
            self._store.dispose()
            self._store = None
        self._registry = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from driftline.registry import Registry  # noqa: PLC0415 — lazy: fast --help

            self._registry = Registry.from_settings(self.settings, self.store)
        return self._registry


def _load_settings(home: Path | None) -> Settings:
    from pydantic import ValidationError  # noqa: PLC0415 — lazy: fast --help

    from driftline.config import Settings  # noqa: PLC0415 — lazy: fast --help

    try:
        settings = Settings(home=home) if home is not None else Settings()
    except ValidationError as exc:
        raise fail(f"bad configuration: {exc}") from exc
    if settings.tracing != "none":  # OpenTelemetry loads only when spans go somewhere
        from driftline.tracing import configure_tracing  # noqa: PLC0415 — lazy: fast --help

        try:
            configure_tracing(settings)
        except ConfigurationError as exc:  # the tracing extra is not installed
            raise fail(str(exc)) from exc
    return settings


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # pragma: no cover - the callback always sets it
        raise RuntimeError("CLI state missing")
    return obj


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print a :class:`DriftlineError` as one red line and exit 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DriftlineError as exc:
            logging.getLogger("driftline").debug("command failed", exc_info=True)
            raise fail(str(exc)) from exc

    return wrapper


def format_ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


#: The `--json` option of every command that prints a table.
JsonFlag = Annotated[
    bool,
    typer.Option(
        "--json", help="Print the table's data as JSON on stdout (nothing else goes there)."
    ),
]


def plain_json(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers, tuples and sets as lists, and NaN or
    infinities as ``None`` (JSON has no such numbers).

    >>> plain_json({"a": float("nan"), "b": (1, 2.5), "c": {"d": float("inf")}})
    {'a': None, 'b': [1, 2.5], 'c': {'d': None}}
    """
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str | bytes):
        value = value.item()  # a NumPy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout: the machine-readable side of `--json`."""
    sys.stdout.write(json.dumps(plain_json(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


def fmt_metric(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
