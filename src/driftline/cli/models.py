"""`driftline models list | promote | rollback | history` and the top-level `rollback`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from driftline.cli.common import (
    JsonFlag,
    console,
    fmt_metric,
    format_ts,
    handle_errors,
    print_json,
    state,
)

__all__ = ["register_command"]


def register_command(app: typer.Typer) -> None:
    models_app = typer.Typer(
        help="Registered model versions and their aliases.", no_args_is_help=True
    )
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    @handle_errors
    def list_versions(ctx: typer.Context, as_json: JsonFlag = False) -> None:
        """Every version with its aliases and holdout metrics."""
        st = state(ctx)
        versions = st.registry.versions()
        if as_json:
            print_json(
                [
                    {
                        "version": v.version,
                        "aliases": list(v.aliases),
                        "kind": v.kind,
                        "created": v.created,
                        "accuracy": v.metrics.get("accuracy"),
                        "f1_macro": v.metrics.get("f1_macro"),
                        "cohen_kappa": v.metrics.get("cohen_kappa"),
                    }
                    for v in versions
                ]
            )
            return
        if not versions:
            console.print("no versions yet: train one with `driftline train DATA --target COL`")
            return
        table = Table(title=f"Model '{st.settings.model_name}'")
        for col in ("version", "aliases", "kind", "created (UTC)", "accuracy", "macro F1", "kappa"):
            table.add_column(col, justify="right" if col in ("version",) else "left")
        for v in versions:
            table.add_row(
                str(v.version),
                ", ".join(v.aliases) or "-",
                v.kind,
                format_ts(v.created),
                fmt_metric(v.metrics.get("accuracy")),
                fmt_metric(v.metrics.get("f1_macro")),
                fmt_metric(v.metrics.get("cohen_kappa")),
            )
        console.print(table)

    @models_app.command("promote")
    @handle_errors
    def promote(
        ctx: typer.Context,
        version: Annotated[int, typer.Argument(help="Version to make champion.")],
        reason: Annotated[
            str, typer.Option(help="Why (kept in the history).")
        ] = "manual promotion",
    ) -> None:
        """Make VERSION the champion. Running servers switch within their poll interval."""
        before = state(ctx).registry.promote(version, actor="cli", reason=reason)
        console.print(f"champion: {before} → [bold]{version}[/]")

    def _rollback(ctx: typer.Context, to: int | None, reason: str) -> None:
        before, after = state(ctx).registry.rollback(to, actor="cli", reason=reason)
        console.print(f"champion rolled back: {before} → [bold]{after}[/]")

    @models_app.command("rollback")
    @handle_errors
    def rollback(
        ctx: typer.Context,
        to: Annotated[int | None, typer.Option(help="Version to go back to.")] = None,
        reason: Annotated[str, typer.Option(help="Why (kept in the history).")] = "manual rollback",
    ) -> None:
        """Move the champion back to the version that served before (or --to VERSION)."""
        _rollback(ctx, to, reason)

    @app.command("rollback")
    @handle_errors
    def rollback_top(
        ctx: typer.Context,
        to: Annotated[int | None, typer.Option(help="Version to go back to.")] = None,
        reason: Annotated[str, typer.Option(help="Why (kept in the history).")] = "manual rollback",
    ) -> None:
        """Same as `driftline models rollback`."""
        _rollback(ctx, to, reason)

    @models_app.command("history")
    @handle_errors
    def history(
        ctx: typer.Context,
        limit: Annotated[int, typer.Option(min=1)] = 50,
        as_json: JsonFlag = False,
    ) -> None:
        """Alias moves, newest first: who moved what, when and why."""
        moves = state(ctx).registry.history(limit=limit)
        if as_json:
            print_json(
                [
                    {
                        "ts": m.ts,
                        "alias": m.alias,
                        "from_version": m.from_version,
                        "to_version": m.to_version,
                        "actor": m.actor,
                        "reason": m.reason,
                    }
                    for m in moves
                ]
            )
            return
        table = Table(title="Alias history")
        for col in ("time (UTC)", "alias", "from", "to", "actor", "reason"):
            table.add_column(col)
        for m in moves:
            table.add_row(
                format_ts(m.ts),
                m.alias,
                str(m.from_version or "-"),
                str(m.to_version or "-"),
                m.actor,
                m.reason,
            )
        console.print(table)
