"""`driftline train`: fit, evaluate, register."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from driftline.cli.common import (
    JsonFlag,
    console,
    err_console,
    fmt_metric,
    handle_errors,
    print_json,
    state,
)
from driftline.errors import DataError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from driftline.models.bundle import ModelBundle

__all__ = ["metrics_table", "register_command"]

METRIC_ROWS = (
    ("accuracy", "Accuracy"),
    ("precision_macro", "Macro precision"),
    ("recall_macro", "Macro recall"),
    ("f1_macro", "Macro F1"),
    ("cohen_kappa", "Cohen's kappa"),
    ("roc_auc", "ROC AUC"),
    ("log_loss", "Log loss"),
    ("brier", "Brier score"),
)


def metrics_table(metrics: dict[str, Any], title: str = "Holdout metrics") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, name in METRIC_ROWS:
        table.add_row(name, fmt_metric(metrics.get(key)))
    table.add_row("Rows", str(metrics.get("n", "-")))
    return table


def per_class_table(metrics: dict[str, Any]) -> Table:
    table = Table(title="Per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in metrics.get("per_class", []):
        table.add_row(
            str(row["class"]),
            fmt_metric(row["precision"]),
            fmt_metric(row["recall"]),
            fmt_metric(row["f1"]),
            str(row["support"]),
        )
    return table


def confusion_table(metrics: dict[str, Any]) -> Table:
    classes = [str(c) for c in metrics.get("classes", [])]
    table = Table(title="Confusion matrix (rows: true, columns: predicted)")
    table.add_column("")
    for c in classes:
        table.add_column(c, justify="right")
    for c, row in zip(classes, metrics.get("confusion_matrix", []), strict=False):
        table.add_row(c, *map(str, row))
    return table


@dataclass(frozen=True)
class FeastOptions:
    """Where the features of a Feast-trained model come from (``--feast-repo``)."""

    repo: Path
    entities: tuple[str, ...]
    views: tuple[str, ...] = ()
    timestamp: str = "event_timestamp"


def run_training(
    data: Path,
    target: str,
    model: str,
    seed: int,
    holdout: float,
    allow_missing: bool,
    progress_console: Console = console,
    feast: FeastOptions | None = None,
) -> ModelBundle:
    from rich.progress import (  # noqa: PLC0415 — lazy: fast --help
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from driftline.data.io import read_table  # noqa: PLC0415 — lazy: fast --help
    from driftline.training import train_model  # noqa: PLC0415 — lazy: fast --help

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]}"),
        TimeElapsedColumn(),
        console=progress_console,
    ) as progress:
        task = progress.add_task(f"reading {data}", total=None, rows="")
        frame = read_table(data)
        progress.update(task, description=f"read {len(frame):,} rows × {frame.shape[1]} columns")
        spec = None
        if feast is not None:
            from driftline.featurestore import (  # noqa: PLC0415 — Feast only with --feast-repo
                FeatureRepo,
                training_table,
            )

            progress.update(task, description=f"point-in-time join from Feast ({feast.repo})")
            table = training_table(
                FeatureRepo(feast.repo),
                frame,
                entities=feast.entities,
                views=feast.views,
                timestamp=feast.timestamp,
            )
            frame, spec = table.frame, table.spec
            views = ", ".join(f"{v} ({len(f)})" for v, f in spec.views.items())
            progress_console.print(
                f"Feast: {len(frame):,} rows with features from {views}"
                + (f"; {table.dropped:,} rows without them dropped" if table.dropped else "")
            )

        def step(name: str) -> None:
            progress.update(task, description=name)

        rows_task: TaskID | None = None

        def rows(done: int, total: int) -> None:  # an online model learning row by row
            nonlocal rows_task
            if rows_task is None:
                rows_task = progress.add_task("learning rows", total=total, rows="")
            progress.update(rows_task, completed=done, rows=f"{done:,}/{total:,}")

        result = train_model(
            frame,
            target,
            kind=model,
            seed=seed,
            holdout=holdout,
            allow_missing=allow_missing,
            progress=step,
            rows_progress=rows,
        )
        progress.update(task, description=f"trained in {result.seconds:.1f}s")
    if spec is not None:
        result.bundle.meta["feast"] = spec.to_meta()
    return result.bundle


def register_command(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def train(
        ctx: typer.Context,
        data: Annotated[Path, typer.Argument(help="Training table (.csv or .parquet).")],
        target: Annotated[str, typer.Option("--target", "-t", help="Label column.")],
        model: Annotated[
            str, typer.Option("--model", "-m", help="hgb, rf, logreg, or arf (online).")
        ] = "hgb",
        seed: Annotated[int, typer.Option(help="Seed of the split and model.")] = 0,
        holdout: Annotated[float, typer.Option(min=0.05, max=0.5, help="Holdout share.")] = 0.25,
        allow_missing: Annotated[
            bool, typer.Option(help="Accept missing values in every feature at serving time.")
        ] = False,
        promote: Annotated[
            bool, typer.Option(help="Make the new version champion right away.")
        ] = False,
        register: Annotated[bool, typer.Option(help="Register the model in MLflow.")] = True,
        as_json: JsonFlag = False,
        feast_repo: Annotated[
            Path | None,
            typer.Option(
                help="A Feast feature repo: DATA is then an entity table (entity keys, event "
                "timestamp, label) and the features come from Feast's offline store, "
                "point-in-time correct.",
            ),
        ] = None,
        entity: Annotated[
            list[str] | None,
            typer.Option(help="Entity join key of the Feast features (repeat for several)."),
        ] = None,
        feature_view: Annotated[
            list[str] | None,
            typer.Option(
                help="Feast feature view to read (repeat; default: every view keyed by the "
                "entities)."
            ),
        ] = None,
        timestamp_column: Annotated[
            str, typer.Option(help="Event timestamp column of the entity table (with Feast).")
        ] = "event_timestamp",
    ) -> None:
        """Train a classifier on DATA, print holdout metrics, and register it.

        The first version of a model becomes champion; later ones wait for `models promote`
        (or --promote). With --feast-repo, DATA holds entity keys, event timestamps and labels;
        the features are joined from Feast and the model records which feature view each
        comes from, so serving fetches them by entity.
        """
        from driftline.registry import CHAMPION  # noqa: PLC0415 — lazy: fast --help

        feast = None
        if feast_repo is not None:
            if not entity:
                raise DataError("--feast-repo needs --entity (the join key features are keyed by)")
            feast = FeastOptions(
                feast_repo, tuple(entity), tuple(feature_view or ()), timestamp_column
            )
        elif entity or feature_view:
            raise DataError("--entity and --feature-view go with --feast-repo")
        bundle = run_training(
            data,
            target,
            model,
            seed,
            holdout,
            allow_missing,
            progress_console=err_console if as_json else console,
            feast=feast,
        )
        if not as_json:
            console.print(metrics_table(bundle.metrics))
            if bundle.metrics.get("per_class"):
                console.print(per_class_table(bundle.metrics))
            console.print(confusion_table(bundle.metrics))
        st = state(ctx)
        version: int | None = None
        aliases: dict[str, int] = {}
        if register:
            version = st.registry.register(bundle, actor="cli", reason=f"trained on {data.name}")
            if promote and st.registry.alias(CHAMPION) != version:
                st.registry.promote(version, actor="cli", reason="--promote at training")
            aliases = st.registry.aliases()
        if as_json:  # the holdout metrics with their per-class rows and confusion matrix
            print_json(
                {
                    "kind": bundle.kind,
                    "metrics": bundle.metrics,
                    "model_name": st.settings.model_name,
                    "version": version,
                    "aliases": [a for a, v in aliases.items() if v == version],
                    "champion": aliases.get(CHAMPION),
                }
            )
            return
        if version is None:
            return
        where = [a for a, v in aliases.items() if v == version]
        console.print(
            f"[green]registered[/] {st.settings.model_name} version [bold]{version}[/]"
            + (f" ({', '.join(where)})" if where else f" (champion is {aliases.get(CHAMPION)})")
        )
