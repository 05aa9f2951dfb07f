"""`driftline db`: the store's schema migrations (Alembic), for a migration job that runs
before the API replicas start (`driftline serve` also migrates at start-up, under a lock),
and the records the store refused (dead letters)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from driftline.cli.common import JsonFlag, console, format_ts, handle_errors, print_json, state

__all__ = ["db_app"]

db_app = typer.Typer(help="The store's schema migrations and dead letters.", no_args_is_help=True)


@db_app.command("upgrade")
@handle_errors
def upgrade_command(ctx: typer.Context) -> None:
    """Bring the store's tables to the newest revision (idempotent; safe from several
    processes at once on PostgreSQL, which serialises them with an advisory lock)."""
    from driftline.store import create_store_engine, current_revision, upgrade  # noqa: PLC0415 — lazy: fast --help

    settings = state(ctx).settings
    settings.ensure_home()
    engine = create_store_engine(settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"store already at revision {after}")
    else:
        console.print(f"store migrated from revision {before or '(empty)'} to {after}")


@db_app.command("current")
@handle_errors
def current_command(ctx: typer.Context) -> None:
    """Print the store's revision and the newest one; exit 2 when the store is behind."""
    from driftline.store import create_store_engine, current_revision, head_revision  # noqa: PLC0415 — lazy: fast --help

    settings = state(ctx).settings
    engine = create_store_engine(settings.database_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    console.print(f"store revision {current or '(empty)'}; newest {head}")
    if current != head:
        raise typer.Exit(2)


@db_app.command("dead-letters")
@handle_errors
def dead_letters_command(
    ctx: typer.Context,
    kind: Annotated[
        str | None, typer.Option(help="Only this kind (prediction, label, ...).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Records the store refused (a NUL in a text, a value out of range, ...), oldest first,
    each with the store's error. The writer keeps them here instead of letting one bad record
    block the ones behind it (`driftline_records_dead_lettered_total` counts them)."""
    from driftline.store import queries  # noqa: PLC0415 — lazy: fast --help

    with state(ctx).store.sessions() as session:
        rows = queries.list_dead_letters(session=session, kind=kind, limit=limit)
    if as_json:
        print_json(
            [
                {
                    "id": d.id,
                    "ts": d.ts,
                    "kind": d.kind,
                    "record": json.loads(d.record),
                    "error": d.error,
                }
                for d in rows
            ]
        )
        return
    table = Table(title="Dead letters")
    for col in ("id", "time (UTC)", "kind", "error", "record"):
        table.add_column(col, overflow="fold")
    for d in rows:
        table.add_row(
            str(d.id), format_ts(d.ts), d.kind, _short(d.error, 160), _short(d.record, 160)
        )
    console.print(table if rows else "no dead letters")


def _short(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters (errors from the database span lines)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
