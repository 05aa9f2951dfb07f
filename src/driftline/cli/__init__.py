"""The ``driftline`` command line. Each command lives in its own module and calls the same
functions the HTTP routes use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli import (
    anomaly,
    audit,
    batch,
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
from driftline.cli.common import State, fail
from driftline.config import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="driftline",
    help="Drift-aware ML serving and monitoring.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="State folder (default DRIFTLINE_HOME or ./.driftline)."),
    ] = None,
) -> None:
    from pydantic import ValidationError

    from driftline.errors import ConfigurationError
    from driftline.tracing import configure_tracing

    try:
        settings = Settings(home=home) if home is not None else Settings()
    except ValidationError as exc:
        raise fail(f"bad configuration: {exc}") from exc
    try:
        configure_tracing(settings)
    except ConfigurationError as exc:
        raise fail(str(exc)) from exc
    ctx.obj = State(settings)


for _module in (demo, train, serve, models, batch, monitor, loop, audit, streams, loadtest):
    _module.register_command(app)
app.add_typer(anomaly.anomaly_app, name="anomaly")
app.add_typer(anomaly.host_app, name="host")
app.add_typer(db.db_app, name="db")


def main() -> None:
    app()
