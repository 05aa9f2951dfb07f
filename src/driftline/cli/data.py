"""`driftline data generate|inject` (sample data, drift on demand) and `driftline simulate`
(drive a running server the way the demo drives its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from driftline.cli.common import console, fail, handle_errors
from driftline.data.constants import DRIFT_KINDS

__all__ = ["data_app", "register_command"]

data_app = typer.Typer(help="Sample data sets and drift injection.", no_args_is_help=True)

DATASETS = ("loans",)
CONCEPTS = ("base", "shifted", "segment")


@data_app.command("generate")
@handle_errors
def generate(
    dataset: Annotated[str, typer.Argument(help="Which data set: loans.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV or Parquet file to write.")],
    rows: Annotated[int, typer.Option(min=1, max=10_000_000, help="Number of rows.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same rows.")] = 0,
    concept: Annotated[
        str,
        typer.Option(
            help="Label rule: base, shifted (a new rule for everyone) or segment (a new rule "
            "for high debt-to-income applicants)."
        ),
    ] = "base",
    no_target: Annotated[
        bool, typer.Option("--no-target", help="Leave out the label column (`default`).")
    ] = False,
) -> None:
    """Generate a seeded sample data set: loan applications with numeric, categorical and
    boolean features, some missing values, and a `default` label."""
    from driftline.data.io import write_table  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.synthetic import generate_loans  # noqa: PLC0415 — lazy: fast --help

    if dataset not in DATASETS:
        raise fail(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    if concept not in CONCEPTS:
        raise fail(f"--concept must be one of {', '.join(CONCEPTS)}, got {concept!r}")
    frame = generate_loans(rows, seed=seed, concept=concept, with_target=not no_target)  # type: ignore[arg-type]
    write_table(frame, output)
    console.print(
        f"[green]wrote[/] {output}: {len(frame):,} rows, columns {', '.join(frame.columns)}",
        highlight=False,
    )


@data_app.command("inject")
@handle_errors
def inject(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV or Parquet file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV or Parquet file to write.")],
    kind: Annotated[str, typer.Option(help=f"Drift kind: {', '.join(DRIFT_KINDS)}.")],
    feature: Annotated[
        str | None, typer.Option(help="The column to alter (all kinds but concept).")
    ] = None,
    strength: Annotated[
        float,
        typer.Option(
            help="mean_shift: standard deviations added; variance_change: spread × (1 + s); "
            "new_category, category_mix, missing_rate, outliers: share of rows."
        ),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the random choices.")] = 0,
    target: Annotated[
        str, typer.Option(help="concept: the label column to redraw (loan data).")
    ] = "default",
    concept: Annotated[
        str, typer.Option(help="concept: the new label rule, shifted or segment.")
    ] = "shifted",
) -> None:
    """Write a copy of INPUT with one kind of drift injected. `concept` keeps the features
    and redraws the labels of loan applications under a new rule."""
    from driftline.data.inject import inject_drift  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.io import read_table, write_table  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.synthetic import label_loans  # noqa: PLC0415 — lazy: fast --help

    if kind not in DRIFT_KINDS:
        raise fail(f"--kind must be one of {', '.join(DRIFT_KINDS)}, got {kind!r}")
    frame = read_table(input_path)
    if kind == "concept":
        if concept not in CONCEPTS[1:]:
            raise fail(f"--concept must be shifted or segment, got {concept!r}")
        if target not in frame.columns:
            raise fail(f"--target {target!r} is not a column of {input_path}")
        out = inject_drift(
            frame,
            "concept",
            seed=seed,
            target=target,
            relabel=lambda f, rng: label_loans(f, concept=concept, rng=rng),  # type: ignore[arg-type]
        )
    else:
        if feature is None:
            raise fail(f"--kind {kind} needs --feature (a column of {input_path})")
        if feature not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise fail(f"--feature {feature!r} is not a column of {input_path}; columns: {columns}")
        out = inject_drift(frame, kind, feature=feature, strength=strength, seed=seed)
    write_table(out, output)
    what = f"{kind} on {feature}" if kind != "concept" else f"concept ({concept}) on {target}"
    console.print(f"[green]wrote[/] {output}: {len(out):,} rows, {what}", highlight=False)


def register_command(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")

    @app.command()
    @handle_errors
    def simulate(
        url: Annotated[str, typer.Option(help="The server, e.g. http://127.0.0.1:8000.")],
        rate: Annotated[
            float, typer.Option(min=0.1, max=5_000, help="Requests per second.")
        ] = 20.0,
        duration: Annotated[float, typer.Option(min=1, help="Seconds of traffic.")] = 60.0,
        drift_at: Annotated[
            float | None,
            typer.Option(help="Seconds after the start when traffic turns drifted (none: never)."),
        ] = None,
        label_delay: Annotated[
            float, typer.Option(min=0, help="Seconds before each label is sent.")
        ] = 2.0,
        data: Annotated[
            Path | None,
            typer.Option(help="Rows to send (CSV/Parquet), cycled; default: loan applications."),
        ] = None,
        drifted_data: Annotated[
            Path | None, typer.Option(help="Rows to send after --drift-at (with --data).")
        ] = None,
        target: Annotated[
            str, typer.Option(help="Label column of the rows: sent to /labels, not /predict.")
        ] = "default",
        seed: Annotated[int, typer.Option(help="Seed of the generated rows.")] = 7,
        concurrency: Annotated[
            int, typer.Option(min=1, max=1_000, help="Requests in flight.")
        ] = 16,
        token: Annotated[
            str | None,
            typer.Option(envvar="DRIFTLINE_TOKEN", help="Bearer token, if the server wants one."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="No live view; print the totals as JSON.")
        ] = False,
    ) -> None:
        """Drive a running server as `driftline demo` drives its own: predictions at RATE,
        each label after LABEL_DELAY, drifted rows from DRIFT_AT on."""
        from driftline.data.io import read_table  # noqa: PLC0415 — lazy: fast --help
        from driftline.demo import DemoOptions  # noqa: PLC0415 — lazy: fast --help
        from driftline.simulate import file_rows, run_simulation  # noqa: PLC0415 — lazy: fast --help

        if drift_at is not None and not 0 <= drift_at < duration:
            raise fail(f"--drift-at must be in [0, --duration={duration:g}), got {drift_at:g}")
        if drifted_data is not None and data is None:
            raise fail("--drifted-data needs --data (the rows before the drift)")
        rows = None
        note = (
            "drift: debt-to-income +2 SD, income +0.5 SD, more small-business loans, a new "
            "repayment rule for high-debt applicants"
        )
        if data is not None:
            normal = read_table(data)
            drifted = read_table(drifted_data) if drifted_data is not None else None
            if drift_at is not None and drifted is None:
                raise fail("with --data, --drift-at needs --drifted-data (the rows after it)")
            rows = file_rows(normal, drifted)
            note = f"drift: rows from {drifted_data}"
        options = DemoOptions(
            duration=duration,
            rate=rate,
            seed=seed,
            label_delay=label_delay,
            concurrency=concurrency,
            drift_at=drift_at / duration if drift_at is not None else None,
            id_prefix="sim",
        )
        stats = run_simulation(
            url,
            options,
            console,
            rows=rows,
            target=target,
            drift_note=note,
            token=token,
            live=not as_json,
        )
        if as_json:
            console.print_json(json.dumps(stats.totals()))
        else:
            console.print(
                f"[green]done[/]: {stats.ok:,} predictions, {stats.labels_sent:,} labels, "
                f"{stats.errors:,} errors"
            )
        if stats.sent and stats.ok == 0:
            raise fail(f"no request succeeded; last error: {stats.last_error}")
