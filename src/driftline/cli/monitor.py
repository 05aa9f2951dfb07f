"""`driftline check` (one monitor run, printed) and `driftline report` (HTML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from driftline.cli.common import (
    ExitCode,
    console,
    fail,
    fmt_metric,
    format_ts,
    handle_errors,
    state,
)
from driftline.data.constants import DEFAULT_BATCH_ROWS
from driftline.durations import parse_duration

__all__ = ["print_report", "register_command"]

STYLE = {
    "ok": "green",
    "none": "green",
    "warning": "yellow",
    "soft": "yellow",
    "critical": "bold red",
    "hard": "bold red",
    "insufficient_data": "dim",
}


def _sev(value: Any) -> str:
    text = str(value)
    return f"[{STYLE.get(text, 'white')}]{text}[/]"


def _drift_table(drift: dict[str, Any], title: str) -> Table:
    table = Table(title=f"{title}: {_sev(drift['severity'])}")
    for col in ("feature", "test", "statistic", "p (BH)", "effect", "missing ref→cur", "verdict"):
        table.add_column(col, justify="left" if col in ("feature", "test", "verdict") else "right")
    for f in drift["features"]:
        table.add_row(
            f["feature"],
            str(f["method"]),
            fmt_metric(f["statistic"]),
            fmt_metric(f["p_adjusted"]),
            f"{f['effect_name']} {fmt_metric(f['effect_size'])}",
            f"{fmt_metric(f['missing_rate_reference'])}→{fmt_metric(f['missing_rate_current'])}",
            _sev(f["severity"]),
        )
    return table


def print_report(body: dict[str, Any]) -> None:
    files = body.get("files")
    if files:  # a comparison of two files (`check --reference A --current B`)
        console.rule(f"comparison · status {_sev(body['status'])}")
        console.print(
            f"reference {files['reference']} ({body['data_drift']['n_reference_rows']:,} rows)\n"
            f"current   {files['current']} ({body['rows']:,} rows)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        window = body["window"]
        console.rule(
            f"report {body.get('id', '')} · model version {body['model_version']} · "
            f"status {_sev(body['status'])}"
        )
        console.print(
            f"window {format_ts(window['start'])} → {format_ts(window['end'])} UTC: "
            f"{body['rows']:,} rows, {body['rejected']:,} rejected, {body['errors']:,} errors"
        )
    console.print(_drift_table(body["data_drift"], "Data drift"))
    for reason in body["data_drift"]["reasons"]:
        console.print(f"  · {reason}")
    if body.get("prediction_drift"):
        console.print(_drift_table(body["prediction_drift"], "Prediction drift"))
    quality = body["quality"]
    failed = [f for f in quality["findings"] if not f["passed"]]
    table = Table(title=f"Data quality: {_sev(quality['severity'])}")
    for col in ("check", "feature", "severity", "value", "threshold", "message"):
        table.add_column(col)
    for f in failed:
        table.add_row(
            str(f["check"]),
            str(f.get("feature") or "-"),
            _sev(f["severity"]),
            fmt_metric(f["value"]),
            fmt_metric(f["threshold"]),
            str(f["message"]),
        )
    if failed:
        console.print(table)
    else:
        console.print(f"Data quality: {_sev(quality['severity'])} (no failed checks)")
    if files:
        return  # no model, no labels: nothing to say about performance or concept drift
    from driftline.report import estimator_label  # noqa: PLC0415 — lazy: fast --help

    performance = body["performance"]
    est = performance.get("estimated") or {}
    real = performance.get("realized") or {}
    table = Table(title="Performance")
    for col in ("metric", "reference", "estimated", "band", "realized (labels)"):
        table.add_column(col, justify="right")
    table.add_row(
        f"accuracy ({estimator_label(performance.get('estimator'))})"
        if est
        else "accuracy",
        fmt_metric(performance.get("reference_accuracy")),
        fmt_metric(est.get("accuracy")),
        f"[{fmt_metric(est.get('accuracy_lower'))}, {fmt_metric(est.get('accuracy_upper'))}]"
        if est
        else "-",
        f"{fmt_metric(real.get('accuracy'))} (n={real.get('n', 0)})",
    )
    table.add_row(
        "macro F1 (CBPE)" if est else "macro F1",
        "-",
        fmt_metric(est.get("f1_macro")),
        f"[{fmt_metric(est.get('f1_lower'))}, {fmt_metric(est.get('f1_upper'))}]" if est else "-",
        fmt_metric(real.get("f1_macro")),
    )
    table.add_row(
        "ROC AUC (CBPE)" if est else "ROC AUC",
        "-", fmt_metric(est.get("roc_auc")), "", fmt_metric(real.get("roc_auc"))
    )
    table.add_row("Cohen's kappa", "-", "-", "", fmt_metric(real.get("cohen_kappa")))
    console.print(table)
    if est and performance.get("estimator_reason"):
        console.print(
            f"  · accuracy estimated by {estimator_label(performance.get('estimator'))}: "
            f"{performance['estimator_reason']}",
            highlight=False,
        )
    concept = body["concept_drift"]
    console.print(
        f"Concept drift: {concept.get('state')} · {concept.get('n_drifts', 0)} confirmed · "
        f"{concept.get('n_seen', 0):,} labelled predictions seen · recent error rate "
        f"{fmt_metric(concept.get('error_rate'))}"
    )


def _compare_files(
    reference: Path,
    current: Path,
    prediction: str | None,
    score: str | None,
    target: str | None,
    html: Path | None,
    engine: str,
    batch_rows: int,
) -> dict[str, Any]:
    """`driftline.compare_datasets` over two files or datasets: the profiles `compare` builds,
    read batch by batch (or counted on Ray)."""
    from driftline.comparison import compare_datasets  # noqa: PLC0415 — lazy: fast --help

    result = compare_datasets(
        reference,
        current,
        prediction=prediction,
        score=score,
        target=target,
        engine="ray" if engine == "ray" else "local",
        batch_rows=batch_rows,
    )
    if html is not None:
        result.to_html(html)
    return {**result.to_dict(), "files": {"reference": str(reference), "current": str(current)}}


def _print_and_exit(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(body))
    else:
        print_report(body)
    code = {"warning": ExitCode.WARNING, "critical": ExitCode.CRITICAL}.get(body["status"], 0)
    if code:
        raise typer.Exit(code)


def register_command(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def check(
        ctx: typer.Context,
        window: Annotated[str, typer.Option(help="How much recent traffic: 30m, 6h, 2d.")] = "6h",
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        persist: Annotated[bool, typer.Option(help="Save the report in the store.")] = True,
        reference: Annotated[
            Path | None,
            typer.Option(
                help="Compare two datasets instead: the reference (a CSV or Parquet file, "
                "a directory of them or a glob)."
            ),
        ] = None,
        current: Annotated[
            Path | None, typer.Option(help="With --reference: the current data (same forms).")
        ] = None,
        prediction: Annotated[
            str | None, typer.Option(help="With files: predicted-label column (prediction drift).")
        ] = None,
        score: Annotated[
            str | None, typer.Option(help="With files: model score column (prediction drift).")
        ] = None,
        target: Annotated[
            str | None, typer.Option(help="With files: a label column to leave out.")
        ] = None,
        html: Annotated[
            Path | None, typer.Option("--html", help="With files: also write the HTML report.")
        ] = None,
        engine: Annotated[
            str,
            typer.Option(
                help="With files: 'local' streams them in record batches in this process; "
                "'ray' counts them per block on Ray Data (the ray extra; RAY_ADDRESS or a "
                "local Ray)."
            ),
        ] = "local",
        batch_rows: Annotated[
            int, typer.Option(min=1, help="With files and --engine local: rows per batch.")
        ] = DEFAULT_BATCH_ROWS,
    ) -> None:
        """Run the monitor once over WINDOW: data drift, prediction drift, quality, estimated
        and realized performance, concept drift. With --reference and --current, compare two
        files instead (the same decision, no server or store needed). Exit code 0 (ok),
        1 (error), 2 (usage), 3 (critical), 4 (warning) — usable from cron or CI. Files may
        be larger than memory: they are read in record batches (--engine ray: per block on
        Ray Data)."""
        from driftline.drift.decision import DriftPolicy  # noqa: PLC0415 — lazy: fast --help
        from driftline.monitoring.concept import update_concept  # noqa: PLC0415 — lazy: fast --help
        from driftline.monitoring.monitor import MonitorOptions, run_monitor  # noqa: PLC0415 — lazy: fast --help
        from driftline.registry import CHAMPION  # noqa: PLC0415 — lazy: fast --help

        if reference is not None or current is not None:
            if reference is None or current is None:
                raise fail("compare files with both --reference and --current")
            if engine not in ("local", "ray"):
                raise fail(f"--engine must be 'local' or 'ray', got {engine!r}")
            body = _compare_files(
                reference, current, prediction, score, target, html, engine, batch_rows
            )
            if html is not None and not as_json:
                console.print(f"[green]wrote[/] {html}", highlight=False)
            _print_and_exit(body, as_json)
            return
        st = state(ctx)
        seconds = parse_duration(window, "--window")
        version = st.registry.alias(CHAMPION)
        if version is not None:
            update_concept(st.store, st.settings.model_name, version)
        body = run_monitor(
            store=st.store,
            registry=st.registry,
            options=MonitorOptions(
                window_seconds=seconds,
                bucket_seconds=st.settings.monitor_bucket_seconds,
                drift=DriftPolicy(report=st.settings.drift_report),
                estimator=st.settings.monitor_estimator,
            ),
            persist=persist,
        )
        _print_and_exit(body, as_json)

    @app.command()
    @handle_errors
    def report(
        ctx: typer.Context,
        output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
            "driftline-report.html"
        ),
        report_id: Annotated[
            int | None, typer.Option("--id", help="Report to render (default: the latest).")
        ] = None,
        history: Annotated[
            int, typer.Option(min=1, max=1000, help="Reports shown in the charts over time.")
        ] = 100,
        run: Annotated[bool, typer.Option(help="Run the monitor first (over --window).")] = False,
        window: Annotated[str, typer.Option(help="Window of --run.")] = "6h",
    ) -> None:
        """Write a self-contained HTML report with Plotly charts: reference vs current
        distribution per feature, drift over time, estimated vs realized accuracy, quality."""
        from driftline.monitoring.html import render_report_html  # noqa: PLC0415 — lazy: fast --help
        from driftline.monitoring.monitor import MonitorOptions, run_monitor  # noqa: PLC0415 — lazy: fast --help
        from driftline.store import queries  # noqa: PLC0415 — lazy: fast --help

        st = state(ctx)
        if run:
            body = run_monitor(
                store=st.store,
                registry=st.registry,
                options=MonitorOptions(
                    window_seconds=parse_duration(window, "--window"),
                    estimator=st.settings.monitor_estimator,
                ),
            )
        with st.store.sessions() as session:
            row = (
                queries.get_report(report_id, session=session)
                if report_id is not None
                else queries.latest_report(session=session, model_name=st.settings.model_name)
            )
            past = queries.list_reports(
                session=session, model_name=st.settings.model_name, limit=history
            )
        if row is None:
            raise fail("no report yet: run `driftline check` (or `driftline report --run`)")
        body = {**row.body, "id": row.id}
        output.write_text(render_report_html(body, [r.body for r in past]))
        console.print(f"[green]wrote[/] {output} (report {row.id}, {len(past)} in the charts)")
