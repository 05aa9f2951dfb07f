"""The ``driftline`` command line. Each command lives in its own module and calls the same
functions the HTTP routes use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from driftline.cli import (
    anomaly,
    audit,
    batch,
    data,
    db,
    demo,
    loadtest,
    loop,
    models,
    monitor,
    serve,
    streams,
    train,
)
from driftline.cli.common import State, fit_consoles

__all__ = ["app", "hoist_home", "main"]

app = typer.Typer(
    name="driftline",
    help="Drift-aware ML serving and monitoring.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        from driftline import __version__  # noqa: PLC0415 — the package is loaded already

        typer.echo(f"driftline {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="State folder (default DRIFTLINE_HOME or ./.driftline)."),
    ] = None,
    version: Annotated[  # read by its callback, which prints and exits
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print driftline's version and exit.",
        ),
    ] = False,
) -> None:
    fit_consoles()
    # Settings load on first use (see State): Click runs this callback before it reads a
    # subcommand's --help, and a help screen must not wait for pydantic-settings.
    ctx.obj = State(home=home)
    ctx.call_on_close(ctx.obj.close)  # the store's connections, closed when the command ends


for _module in (demo, train, serve, models, batch, monitor, loop, audit, streams, data, loadtest):
    _module.register_command(app)
app.add_typer(anomaly.anomaly_app, name="anomaly")
app.add_typer(anomaly.host_app, name="host")
app.add_typer(db.db_app, name="db")


def hoist_home(args: list[str]) -> list[str]:
    """Move ``--home PATH`` (an option of ``driftline`` itself) in front of the subcommand, so
    that ``driftline check --home X`` works as ``driftline --home X check`` does.

    >>> hoist_home(["check", "--window", "1h", "--home", "/srv/d"])
    ['--home', '/srv/d', 'check', '--window', '1h']
    >>> hoist_home(["models", "list", "--home=/srv/d"])
    ['--home=/srv/d', 'models', 'list']
    >>> hoist_home(["predict", "in.csv", "--", "--home", "x"])
    ['predict', 'in.csv', '--', '--home', 'x']
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg == "--home" and i + 1 < len(args):
            front += args[i : i + 2]
            i += 2
            continue
        if arg.startswith("--home="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main() -> None:
    app(args=hoist_home(sys.argv[1:]), prog_name="driftline")
