"""`driftline db`: the store's schema migrations (Alembic), for a migration job that runs
before the API replicas start (`driftline serve` also migrates at start-up, under a lock)."""

from __future__ import annotations

import typer

from driftline.cli.common import console, handle_errors, state

__all__ = ["db_app"]

db_app = typer.Typer(help="The store's schema migrations.", no_args_is_help=True)


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
