"""`driftline predict` (score a file) and `driftline labels import` (load ground truth)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from driftline.cli.common import console, fail, handle_errors, state

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress

__all__ = ["register_command"]


def _progress() -> Progress:
    from rich.progress import (  # noqa: PLC0415 — lazy: fast --help
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def register_command(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def predict(
        ctx: typer.Context,
        input: Annotated[Path, typer.Argument(help="Rows to score (.csv or .parquet).")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to write scores.")],
        version: Annotated[
            int | None, typer.Option(help="Model version (default: the champion).")
        ] = None,
        chunk_size: Annotated[int, typer.Option(min=1, help="Rows per model call.")] = 10_000,
        log: Annotated[
            bool, typer.Option(help="Also log the predictions to the store (source=file).")
        ] = False,
        id_column: Annotated[
            str | None, typer.Option(help="Column holding request ids (for --log).")
        ] = None,
    ) -> None:
        """Score a file with the champion (or --version) and write it with `prediction`,
        `confidence` and one `proba_<class>` column per class."""
        import numpy as np  # noqa: PLC0415 — lazy: fast --help

        from driftline.data.io import read_table, write_table  # noqa: PLC0415 — lazy: fast --help
        from driftline.registry import CHAMPION  # noqa: PLC0415 — lazy: fast --help

        st = state(ctx)
        registry = st.registry
        chosen = version if version is not None else registry.alias(CHAMPION)
        if chosen is None:
            raise fail("no champion yet: train a model first, or pass --version")
        bundle = registry.load(chosen)
        frame = read_table(input)
        labels: list[Any] = []
        proba_parts: list[np.ndarray] = []
        with _progress() as progress:
            task = progress.add_task(f"scoring with version {chosen}", total=len(frame))
            for start in range(0, len(frame), chunk_size):
                part = frame.iloc[start : start + chunk_size]
                predictions = bundle.predict_frame(part)
                labels.extend(predictions.labels)
                proba_parts.append(predictions.proba)
                progress.advance(task, len(part))
        proba = np.vstack(proba_parts) if proba_parts else np.zeros((0, len(bundle.classes)))
        out = frame.copy()
        out["prediction"] = labels
        out["confidence"] = proba.max(axis=1) if len(proba) else []
        for j, c in enumerate(bundle.classes):
            out[f"proba_{c}"] = proba[:, j]
        write_table(out, output)
        console.print(f"[green]wrote[/] {len(out):,} scored rows to {output}")
        if log:
            _log_scored(st, bundle.schema.names, out, chosen, id_column)

    def _log_scored(
        st: Any, names: tuple[str, ...], out: pd.DataFrame, version: int, id_column: str | None
    ) -> None:
        from driftline.schema import label_text  # noqa: PLC0415 — lazy: fast --help
        from driftline.store import queries  # noqa: PLC0415 — lazy: fast --help

        if id_column is not None and id_column not in out.columns:
            raise fail(f"--id-column {id_column!r} is not a column of the input")
        now = time.time()
        proba_cols = [c for c in out.columns if str(c).startswith("proba_")]
        rows = []
        for record in out.to_dict("records"):
            rows.append(
                {
                    "request_id": str(record[id_column]) if id_column else uuid.uuid4().hex,
                    "ts": now,
                    "model_name": st.settings.model_name,
                    "model_version": version,
                    "variant": "champion",
                    "source": "file",
                    "features": {n: _plain(record.get(n)) for n in names},
                    "prediction": label_text(record["prediction"]),
                    "probabilities": {c[len("proba_") :]: float(record[c]) for c in proba_cols},
                    "confidence": float(record["confidence"]),
                    "latency_ms": 0.0,
                }
            )
        with st.store.sessions.begin() as session:
            for start in range(0, len(rows), 1_000):
                queries.insert_predictions(rows[start : start + 1_000], session=session)
        console.print(f"logged {len(rows):,} predictions to the store")

    labels_app = typer.Typer(help="Ground-truth labels.", no_args_is_help=True)
    app.add_typer(labels_app, name="labels")

    @labels_app.command("import")
    @handle_errors
    def import_labels(
        ctx: typer.Context,
        file: Annotated[Path, typer.Argument(help="Table with request ids and labels.")],
        id_column: Annotated[str, typer.Option(help="Request id column.")] = "request_id",
        label_column: Annotated[str, typer.Option(help="Label column.")] = "label",
        chunk_size: Annotated[int, typer.Option(min=1)] = 5_000,
    ) -> None:
        """Load ground truth; labels join predictions by request id (now or later)."""
        from driftline.data.io import read_table  # noqa: PLC0415 — lazy: fast --help
        from driftline.schema import label_text  # noqa: PLC0415 — lazy: fast --help
        from driftline.store import queries  # noqa: PLC0415 — lazy: fast --help

        frame = read_table(file)
        for column in (id_column, label_column):
            if column not in frame.columns:
                raise fail(f"{file} has no column {column!r}; columns: {list(frame.columns)}")
        frame = frame.dropna(subset=[id_column, label_column])
        st = state(ctx)
        now = time.time()
        with _progress() as progress:
            task = progress.add_task("importing labels", total=len(frame))
            for start in range(0, len(frame), chunk_size):
                part = frame.iloc[start : start + chunk_size]
                rows = [
                    {"request_id": str(i), "label": label_text(_plain(v)), "ts": now}
                    for i, v in zip(part[id_column], part[label_column], strict=True)
                ]
                with st.store.sessions.begin() as session:
                    queries.upsert_labels(rows, session=session)
                progress.advance(task, len(part))
        console.print(f"[green]imported[/] {len(frame):,} labels")


def _plain(value: Any) -> Any:
    import numpy as np  # noqa: PLC0415 — lazy: fast --help

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
