"""`driftline alerts` and `driftline audit`."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from driftline.cli.common import JsonFlag, console, format_ts, handle_errors, print_json, state

__all__ = ["register_command"]


def register_command(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def alerts(
        ctx: typer.Context,
        status: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
        limit: Annotated[int, typer.Option(min=1)] = 50,
        as_json: JsonFlag = False,
    ) -> None:
        """Alert episodes recorded by the built-in alerting, newest first."""
        from driftline.store import queries  # noqa: PLC0415 — lazy: fast --help

        with state(ctx).store.sessions() as session:
            rows = queries.list_alerts(session=session, status=status, limit=limit)
        if as_json:
            print_json(
                [
                    {
                        "starts_at": a.starts_at,
                        "ends_at": a.ends_at,
                        "status": a.status,
                        "severity": a.severity,
                        "name": a.name,
                        "summary": a.summary,
                        "labels": a.labels,
                        "notified": list(a.notified),
                    }
                    for a in rows
                ]
            )
            return
        table = Table(title="Alerts")
        for col in ("started (UTC)", "ended", "status", "severity", "alert", "labels", "notified"):
            table.add_column(col)
        for a in rows:
            color = "red" if a.severity == "critical" else "yellow"
            table.add_row(
                format_ts(a.starts_at),
                format_ts(a.ends_at),
                a.status,
                f"[{color}]{a.severity}[/]",
                f"{a.name}: {a.summary}",
                ", ".join(f"{k}={v}" for k, v in a.labels.items()) or "-",
                ", ".join(a.notified) or "-",
            )
        console.print(table if rows else "no alerts recorded")

    @app.command()
    @handle_errors
    def audit(
        ctx: typer.Context,
        kind: Annotated[
            list[str] | None, typer.Option(help="Only these kinds (repeatable).")
        ] = None,
        days: Annotated[float, typer.Option(min=0, help="How far back.")] = 7.0,
        limit: Annotated[int, typer.Option(min=1)] = 100,
        details: Annotated[bool, typer.Option(help="Show each event's numbers.")] = False,
        as_json: JsonFlag = False,
    ) -> None:
        """Every decision with its reasons: alias moves, drift reports, concept drift,
        triggers, gate decisions, rollout steps, promotions, rollbacks, alerts."""
        from driftline.store import queries  # noqa: PLC0415 — lazy: fast --help

        with state(ctx).store.sessions() as session:
            rows = queries.list_audit(
                session=session, kinds=kind, since=time.time() - days * 86_400, limit=limit
            )
        if as_json:  # every event with its numbers (--details is for the table)
            print_json(
                [
                    {
                        "ts": e.ts,
                        "kind": e.kind,
                        "actor": e.actor,
                        "model_version": e.model_version,
                        "success": e.success,
                        "message": e.message,
                        "details": e.details,
                    }
                    for e in rows
                ]
            )
            return
        table = Table(title="Audit log")
        for col in ("time (UTC)", "kind", "actor", "version", "what"):
            table.add_column(col)
        for e in rows:
            what = e.message if e.success else f"[red]{e.message}[/]"
            if details:
                what += "\n[dim]" + json.dumps(e.details, default=str)[:600] + "[/]"
            table.add_row(format_ts(e.ts), e.kind, e.actor, str(e.model_version or "-"), what)
        console.print(table if rows else "the audit log is empty")
