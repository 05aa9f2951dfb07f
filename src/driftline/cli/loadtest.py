"""`driftline loadtest URL --rate R --duration D`: an open-loop load test of a deployment."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from driftline.cli.common import console, fail, handle_errors

if TYPE_CHECKING:
    from driftline.loadtest import LoadtestResult

__all__ = ["register_command"]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_result(result: LoadtestResult) -> None:
    table = Table(title=f"loadtest {result.url} (model version {result.model_version})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("target rate (req/s)", f"{result.target_rate:g}")
    table.add_row("achieved rate, steady phase (req/s)", f"{result.achieved_rate:.1f}")
    table.add_row(
        "scheduled / sent / not sent", f"{result.scheduled} / {result.sent} / {result.not_sent}"
    )
    table.add_row("acknowledged (200)", str(result.ok))
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(result.errors.items())) or "none"
    table.add_row("errors", errors)
    table.add_row(
        "latency p50 / p95 / p99 / max (ms)",
        " / ".join(_ms(v) for v in (result.p50_ms, result.p95_ms, result.p99_ms, result.max_ms)),
    )
    table.add_row("client send lag p99 (ms)", f"{result.client_lag_p99_ms:.1f}")
    if result.stored is not None:
        verdict = "yes" if result.all_stored else f"NO: {len(result.missing)} missing"
        table.add_row(f"every acknowledged prediction stored ({result.verified_by})", verdict)
    console.print(table)


def register_command(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def loadtest(
        url: Annotated[str, typer.Argument(help="Base URL of the API, e.g. http://127.0.0.1:8000")],
        rate: Annotated[
            float, typer.Option(min=0.1, max=100_000, help="Target requests per second.")
        ],
        duration: Annotated[
            float, typer.Option(min=0.5, max=3_600, help="Seconds of load, ramp included.")
        ],
        ramp: Annotated[
            float | None,
            typer.Option(min=0, help="Seconds to rise linearly to RATE (default a fifth)."),
        ] = None,
        max_in_flight: Annotated[
            int, typer.Option(min=1, max=20_000, help="Most outstanding requests.")
        ] = 2_000,
        timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request.")] = 10.0,
        seed: Annotated[int, typer.Option(help="Seed of the generated requests.")] = 0,
        token: Annotated[
            str | None, typer.Option(help="Bearer token sent with /predict (if required).")
        ] = None,
        read_token: Annotated[
            str | None,
            typer.Option(help="Bearer token for GET /schema and GET /predictions (if required)."),
        ] = None,
        database_url: Annotated[
            str | None,
            typer.Option(help="Check the stored predictions in this store, not via the API."),
        ] = None,
        verify: Annotated[
            bool, typer.Option(help="Check that every acknowledged prediction was stored.")
        ] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Send realistic /predict requests, generated from the served model's schema, at an
        open-loop RATE for DURATION seconds; report the achieved rate, latency percentiles,
        errors and whether every acknowledged prediction was stored. Exit 1 when a request
        failed or an acknowledged prediction is missing."""
        import asyncio  # noqa: PLC0415 — lazy: fast --help

        from driftline.config import normalize_database_url  # noqa: PLC0415 — lazy: fast --help
        from driftline.loadtest import LoadtestOptions, run_loadtest  # noqa: PLC0415 — lazy: fast --help

        options = LoadtestOptions(
            rate=rate,
            duration=duration,
            ramp=duration / 5 if ramp is None else ramp,
            max_in_flight=max_in_flight,
            timeout=timeout,
            seed=seed,
            token=token,
            read_token=read_token,
            verify=verify,
        )
        if options.ramp > duration:
            raise fail(f"--ramp ({options.ramp:g}) must not exceed --duration ({duration:g})")
        result = asyncio.run(
            run_loadtest(
                url,
                options,
                database_url=normalize_database_url(database_url) if database_url else None,
                progress=None if as_json else lambda text: console.print(f"[dim]{text}[/]"),
            )
        )
        if as_json:
            console.print_json(json.dumps(result.to_dict()))
        else:
            print_result(result)
        if result.errors or result.not_sent or result.all_stored is False:
            raise typer.Exit(1)
