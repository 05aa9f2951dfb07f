"""`driftline demo`."""

from __future__ import annotations

from typing import Annotated

import typer

from driftline.cli.common import console, err_console, handle_errors, print_json, state

__all__ = ["MIN_STORY_SECONDS", "register_command"]

#: Traffic the story needs after the drift (detection, retrain, gate, shadow, canary, watch,
#: act two) at the default rate on an idle machine; a busy machine needs more.
MIN_STORY_SECONDS = 63.0


def register_command(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def demo(
        ctx: typer.Context,
        duration: Annotated[float, typer.Option(min=1, help="Seconds of traffic.")] = 120.0,
        rate: Annotated[float, typer.Option(min=1, max=5_000, help="Requests per second.")] = 50.0,
        seed: Annotated[int, typer.Option(help="Seed of data and model.")] = 7,
        port: Annotated[int, typer.Option(min=1, max=65535, help="API port.")] = 8000,
        model: Annotated[str, typer.Option(help="hgb, rf or logreg.")] = "hgb",
        label_delay: Annotated[
            float, typer.Option(min=0, help="Seconds before each label is sent.")
        ] = 2.0,
        drift_at: Annotated[
            float, typer.Option(min=0, max=1, help="When drift starts, as a share of --duration.")
        ] = 0.3,
        drift: Annotated[bool, typer.Option(help="Inject drift mid-run.")] = True,
        loop: Annotated[
            bool, typer.Option(help="Run the closed loop: retrain, gate, shadow, canary.")
        ] = True,
        second_act: Annotated[
            bool, typer.Option(help="After the promotion, roll out a bad challenger.")
        ] = True,
        until_story_ends: Annotated[
            bool,
            typer.Option(
                "--until-story-ends/--fixed-duration",
                help="End once the story is told (--duration is then the longest it runs), "
                "or always run --duration seconds.",
            ),
        ] = True,
        as_json: Annotated[
            bool,
            typer.Option(
                "--json",
                help="The live view on stderr; the totals and the timeline as JSON on stdout.",
            ),
        ] = False,
    ) -> None:
        """Train a champion, serve it on 127.0.0.1, drive traffic and delayed labels, inject
        drift part-way and show it being detected, retrained, gated, shadowed, canaried and
        promoted — then a bad challenger caught by the SLO guard — with a live summary and a
        timeline at the end. Ctrl-C stops cleanly."""
        from driftline.demo import DemoOptions, run_demo  # noqa: PLC0415 — lazy: fast --help

        options = DemoOptions(
            duration=duration,
            rate=rate,
            seed=seed,
            port=port,
            model=model,
            label_delay=label_delay,
            drift_at=drift_at if drift else None,
            loop=loop,
            second_act=second_act,
            until_story_ends=until_story_ends,
        )
        out = err_console if as_json else console
        if loop and drift and duration * (1 - drift_at) < MIN_STORY_SECONDS:
            out.print(
                f"[yellow]note:[/] the closed loop needs about {MIN_STORY_SECONDS:.0f} s of "
                f"traffic after the drift; drift starts at {duration * drift_at:.0f} s of "
                f"{duration:.0f} s. Use --duration {MIN_STORY_SECONDS / (1 - drift_at):.0f} or "
                "more for the whole story.",
                highlight=False,
            )
        stats = run_demo(state(ctx).settings, options, out)
        if as_json:
            print_json(stats.totals())
