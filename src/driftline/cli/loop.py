"""`driftline retrain` and `driftline rollout status | start | abort | step`: the closed loop
as CLI jobs any scheduler can call (the same functions `driftline serve` runs inside)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from driftline.cli.common import (
    ExitCode,
    JsonFlag,
    console,
    err_console,
    fmt_metric,
    format_ts,
    handle_errors,
    print_json,
    state,
)

__all__ = ["register_command"]


def _gate_table(metrics: dict[str, Any]) -> Table:
    table = Table(title="gate: champion vs challenger")
    for col in (
        "metric",
        "champion (recent)",
        "challenger (recent)",
        "champion (base)",
        "challenger (base)",
    ):
        table.add_column(col, justify="left" if col == "metric" else "right")
    names = sorted(set(metrics.get("champion", {})) | set(metrics.get("challenger", {})))
    for name in names:
        table.add_row(
            name,
            fmt_metric(metrics["champion"].get(name)),
            fmt_metric(metrics["challenger"].get(name)),
            fmt_metric(metrics.get("champion_base", {}).get(name)),
            fmt_metric(metrics.get("challenger_base", {}).get(name)),
        )
    table.add_row(
        "latency ms/row",
        fmt_metric(metrics.get("champion_latency_ms")),
        fmt_metric(metrics.get("challenger_latency_ms")),
        "",
        "",
    )
    return table


def _show_rollout(rollout: dict[str, Any] | None, as_json: bool = False) -> None:
    if as_json:  # the rollout's record as the store keeps it (null: none has run)
        print_json(rollout)
        return
    if rollout is None:
        console.print("no rollout has run yet")
        return
    console.print(
        f"rollout [bold]{rollout['id']}[/]: version {rollout['challenger']} against champion "
        f"{rollout['champion']} — stage [bold]{rollout['stage']}[/]"
        + (f", canary share {rollout['canary_share']:.0%}" if rollout.get("canary_share") else "")
    )
    table = Table(title="stages")
    for col in ("time (UTC)", "stage", "why"):
        table.add_column(col)
    for entry in rollout.get("history", []):
        table.add_row(format_ts(entry["ts"]), entry["stage"], "; ".join(entry["reasons"]))
    console.print(table)
    verdict = rollout.get("last_verdict")
    if verdict:
        console.print(
            f"last verdict ({format_ts(verdict['ts'])}): {verdict['action']} — "
            f"{'; '.join(verdict['reasons'])}"
        )


def register_command(app: typer.Typer) -> None:
    @app.command("retrain")
    @handle_errors
    def retrain_command(
        ctx: typer.Context,
        force: Annotated[
            bool, typer.Option("--force/--if-triggered", help="Retrain now, whatever the trigger.")
        ] = True,
        rollout: Annotated[
            bool, typer.Option(help="Start the rollout (shadow) of a challenger that passes.")
        ] = True,
        seed: Annotated[int, typer.Option(help="Seed of the split and the model.")] = 0,
        as_json: JsonFlag = False,
    ) -> None:
        """Train a challenger on the labelled traffic since the drift began plus base data,
        gate it against the champion and (if it passes) start its rollout. Exit code 0 when
        a challenger passed, 3 when it was rejected, 5 when nothing triggered (--if-triggered)."""
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415 — lazy: fast --help

        from driftline.loop.retrain import retrain  # noqa: PLC0415 — lazy: fast --help

        st = state(ctx)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console if as_json else console,
            transient=True,
        ) as progress:
            task = progress.add_task("reading the monitor's findings", total=None)
            outcome = retrain(
                st.store,
                st.registry,
                st.settings,
                forced=force,
                actor="cli",
                seed=seed,
                progress=lambda text: progress.update(task, description=text),
                start_rollout_on_pass=rollout,
            )
        if as_json:
            gate = outcome.gate
            print_json(
                {
                    "trigger": {
                        "retrain": outcome.trigger.retrain,
                        "reasons": list(outcome.trigger.reasons),
                    },
                    "data": outcome.data,
                    "challenger_version": outcome.challenger_version,
                    "gate": None
                    if gate is None
                    else {"promote": gate.promote, "reason": gate.reason, "metrics": gate.metrics},
                    "rollout_started": bool(gate is not None and gate.promote and rollout),
                }
            )
            if gate is None:
                raise typer.Exit(ExitCode.NOT_TRIGGERED)
            if not gate.promote:
                raise typer.Exit(ExitCode.CRITICAL)
            return
        console.print(
            f"trigger: {'retrain' if outcome.trigger.retrain else 'no retrain'} — "
            f"{'; '.join(outcome.trigger.reasons)}"
        )
        if outcome.gate is None:
            raise typer.Exit(ExitCode.NOT_TRIGGERED)
        data = outcome.data
        console.print(
            f"data: {data['drift_rows']} production rows since the drift + {data['base_rows']} "
            f"base rows ({data['smote_rows']} SMOTE) → snapshot {data['snapshot']} "
            f"(hash {data['data_hash']})"
        )
        console.print(_gate_table(outcome.gate.metrics))
        verdict = "[green]passed[/]" if outcome.gate.promote else "[red]rejected[/]"
        console.print(
            f"challenger version {outcome.challenger_version}: gate {verdict} — "
            f"{outcome.gate.reason}"
        )
        if outcome.gate.promote and rollout:
            console.print("rollout started in shadow; follow it with `driftline rollout status`")
        if not outcome.gate.promote:
            raise typer.Exit(ExitCode.CRITICAL)

    rollout_app = typer.Typer(help="The rollout of a challenger.", no_args_is_help=True)
    app.add_typer(rollout_app, name="rollout")

    @rollout_app.command("status")
    @handle_errors
    def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
        """The current (or last) rollout with its stages and last verdict."""
        from driftline.loop.controller import read_rollout  # noqa: PLC0415 — lazy: fast --help

        st = state(ctx)
        _show_rollout(read_rollout(st.store, st.settings.model_name), as_json)

    @rollout_app.command("start")
    @handle_errors
    def start(
        ctx: typer.Context,
        version: Annotated[int, typer.Argument(help="Registered version to roll out.")],
        stage: Annotated[str, typer.Option(help="shadow or canary.")] = "shadow",
        as_json: JsonFlag = False,
    ) -> None:
        """Roll out VERSION by hand (skips the gate)."""
        from driftline.loop.controller import start_rollout  # noqa: PLC0415 — lazy: fast --help

        st = state(ctx)
        _show_rollout(
            start_rollout(
                st.store, st.registry, st.settings, challenger=version, actor="cli", stage=stage
            ),
            as_json,
        )

    @rollout_app.command("abort")
    @handle_errors
    def abort(
        ctx: typer.Context,
        reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "by hand",
        as_json: JsonFlag = False,
    ) -> None:
        """Withdraw the challenger of the rollout in shadow or canary."""
        from driftline.loop.controller import abort_rollout  # noqa: PLC0415 — lazy: fast --help

        st = state(ctx)
        _show_rollout(
            abort_rollout(st.store, st.registry, st.settings, actor="cli", reason=reason), as_json
        )

    @rollout_app.command("step")
    @handle_errors
    def step(ctx: typer.Context, as_json: JsonFlag = False) -> None:
        """Measure the active rollout and apply one verdict (what `serve` does every
        DRIFTLINE_LOOP_INTERVAL_SECONDS), for deployments that run the loop from cron."""
        from driftline.loop.controller import RolloutController  # noqa: PLC0415 — lazy: fast --help

        st = state(ctx)
        result = RolloutController(st.store, st.registry, st.settings).step()
        if as_json:  # {verdict: {action, reasons}, rollout: the record after it} or null
            print_json(
                None
                if result is None
                else {
                    "verdict": {
                        "action": result.verdict.action,
                        "reasons": list(result.verdict.reasons),
                    },
                    "rollout": result.state,
                }
            )
            return
        if result is None:
            console.print("no rollout in flight")
            return
        console.print(f"{result.verdict.action}: {'; '.join(result.verdict.reasons)}")
        _show_rollout(result.state)
