"""`driftline anomaly ...` and `driftline host ...`: anomaly detection on host metrics.

Two Typer sub-apps, mounted by the main CLI:

``anomaly``
    ``generate-dataset`` (synthetic host metrics with labeled anomalies), ``compare`` (every
    detector on the same split), ``train`` (fit one detector and save its bundle) and
    ``predict`` (add ``predicted_anomaly`` and ``anomaly_score`` to a table).
``host``
    ``sample`` (this machine's metrics, optionally scored by a detector) and ``load`` (busy
    the CPU for a while, to watch a detector catch it).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from driftline.anomaly.compare import compare_detectors, comparison_table
from driftline.anomaly.dataset import KIND_COLUMN, LABEL_COLUMN, generate_host_metrics
from driftline.anomaly.host import HostSampler, Observation, watch
from driftline.anomaly.load import CpuLoad, parse_duration
from driftline.anomaly.lstm import EXTRA_HINT, torch_available
from driftline.anomaly.training import (
    DETECTOR_KINDS,
    PREDICTED_COLUMN,
    SCORE_COLUMN,
    detector_kind,
    train_anomaly_bundle,
)
from driftline.cli.common import console, fail, fmt_metric, handle_errors, state
from driftline.data.io import read_table, write_table
from driftline.errors import DataError
from driftline.models.bundle import ModelBundle
from driftline.registry import CHAMPION, Registry

__all__ = ["anomaly_app", "host_app"]

DEFAULT_BUNDLE = Path("anomaly-model")

anomaly_app = typer.Typer(
    name="anomaly",
    help="Anomaly detection on host metrics: generate data, compare, train, predict.",
    no_args_is_help=True,
)
host_app = typer.Typer(
    name="host",
    help="This machine's metrics: sample them, or create load to show an anomaly.",
    no_args_is_help=True,
)


def _spinner() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    )


def _load_bundle(folder: Path) -> ModelBundle:
    bundle = ModelBundle.load(folder)
    if bundle.schema.task != "anomaly":
        raise DataError(f"{folder} holds a {bundle.schema.task} model, not an anomaly detector")
    return bundle


# --- anomaly ---------------------------------------------------------------------------------


@anomaly_app.command("generate-dataset")
@handle_errors
def generate_dataset(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write (.csv or .parquet).")
    ] = Path("host_metrics.csv"),
    rows: Annotated[int, typer.Option(min=1, help="Rows, one per minute.")] = 10_080,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same rows.")] = 0,
    anomaly_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of rows inside anomaly episodes.")
    ] = 0.03,
) -> None:
    """Write seeded synthetic host metrics with labeled anomalies of several kinds."""
    frame = generate_host_metrics(rows, seed=seed, anomaly_rate=anomaly_rate)
    write_table(frame, output)
    table = Table(title=f"{len(frame):,} rows written to {output}")
    table.add_column("anomaly kind")
    table.add_column("rows", justify="right")
    for kind, count in frame[KIND_COLUMN].value_counts().sort_index().items():
        table.add_row(str(kind), f"{count:,}")
    console.print(table)


@anomaly_app.command()
@handle_errors
def compare(
    data: Annotated[Path, typer.Argument(help="Labeled metrics (.csv or .parquet).")],
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", help="Detectors to compare (repeat); default all."),
    ] = None,
    contamination: Annotated[
        float, typer.Option(min=0.001, max=0.5, help="Expected anomaly share.")
    ] = 0.03,
    seed: Annotated[int, typer.Option(help="Seed of the split and the detectors.")] = 0,
    holdout: Annotated[float, typer.Option(min=0.05, max=0.5, help="Holdout share.")] = 0.25,
) -> None:
    """Train every detector on the same split of DATA; print precision, recall, F1, ROC AUC."""
    with _spinner() as progress:
        task = progress.add_task(f"reading {data}", total=None)
        frame = read_table(data)
        rows = compare_detectors(
            frame,
            kinds=kind or DETECTOR_KINDS,
            contamination=contamination,
            seed=seed,
            holdout=holdout,
            progress=lambda step: progress.update(task, description=step),
        )
        progress.update(task, description="compared")
    console.print(comparison_table(rows, title=f"Anomaly detectors on {data.name}"))


def _metrics_table(bundle: ModelBundle) -> Table:
    m = bundle.metrics
    table = Table(title=f"{bundle.kind}: holdout metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, name in (
        ("precision", "Precision"),
        ("recall", "Recall"),
        ("f1", "F1"),
        ("roc_auc", "ROC AUC"),
        ("n_flagged", "Rows flagged"),
        ("n_anomalies", "Labeled anomalies"),
        ("n", "Holdout rows"),
        ("fit_seconds", "Fit seconds"),
    ):
        table.add_row(name, fmt_metric(m.get(key)))
    return table


def _recall_table(recall_by_kind: dict[str, float]) -> Table:
    table = Table(title="Recall by anomaly kind")
    table.add_column("kind")
    table.add_column("recall", justify="right")
    for kind, value in recall_by_kind.items():
        table.add_row(kind, f"{value:.3f}")
    return table


@anomaly_app.command()
@handle_errors
def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Metrics (.csv or .parquet), in time order.")],
    kind: Annotated[
        str, typer.Option("--kind", "-k", help="iforest, rf (needs labels) or lstm (extra).")
    ] = "iforest",
    contamination: Annotated[
        float, typer.Option(min=0.001, max=0.5, help="Expected anomaly share.")
    ] = 0.03,
    seed: Annotated[int, typer.Option(help="Seed of the split and the detector.")] = 0,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to save the model bundle in.")
    ] = DEFAULT_BUNDLE,
    register: Annotated[
        bool,
        typer.Option(help="Also register it in the MLflow registry (served like any model)."),
    ] = True,
    model_name: Annotated[
        str, typer.Option(help="Registered model name for the detector.")
    ] = "host-anomaly",
) -> None:
    """Train a detector on DATA, print holdout metrics (when labeled), save the bundle and
    register it (the first version of MODEL_NAME becomes its champion). Serve it with
    `DRIFTLINE_MODEL_NAME=host-anomaly driftline serve`."""
    if detector_kind(kind) == "lstm_ae" and not torch_available():
        raise fail(f"the LSTM autoencoder needs PyTorch, the 'lstm' extra: {EXTRA_HINT}")
    with _spinner() as progress:
        task = progress.add_task(f"reading {data}", total=None)
        frame = read_table(data)
        bundle = train_anomaly_bundle(
            frame,
            kind,
            contamination=contamination,
            seed=seed,
            progress=lambda step: progress.update(task, description=step),
        )
        progress.update(task, description="trained")
    if LABEL_COLUMN in frame.columns:
        console.print(_metrics_table(bundle))
        if bundle.metrics.get("recall_by_kind"):
            console.print(_recall_table(bundle.metrics["recall_by_kind"]))
    else:
        share = bundle.metrics.get("flagged_share_train", 0.0)
        console.print(
            f"no '{LABEL_COLUMN}' column: trained on every row, no evaluation; "
            f"{share:.1%} of training rows flagged"
        )
    bundle.save(output)
    console.print(f"[green]saved[/] {bundle.kind} bundle to {output}")
    if register:
        st = state(ctx)
        registry = Registry(
            tracking_uri=st.settings.mlflow_tracking_uri,
            registry_uri=st.settings.mlflow_registry_uri,
            model_name=model_name,
            store=st.store,
            cache_dir=st.settings.cache_dir,
            artifact_dir=st.settings.artifact_dir,
        )
        version = registry.register(bundle, actor="cli", reason=f"trained on {data.name}")
        console.print(
            f"[green]registered[/] {model_name} version [bold]{version}[/] "
            f"(champion is {registry.alias(CHAMPION)})"
        )


@anomaly_app.command()
@handle_errors
def predict(
    file: Annotated[Path, typer.Argument(help="Metrics to score (.csv or .parquet).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the scored table.")
    ],
    bundle_dir: Annotated[
        Path, typer.Option("--bundle", "-b", help="Model bundle folder (from `train`).")
    ] = DEFAULT_BUNDLE,
) -> None:
    """Add `predicted_anomaly` (0/1) and `anomaly_score` (higher = more anomalous) to FILE."""
    bundle = _load_bundle(bundle_dir)
    frame = read_table(file)
    x = bundle.schema.coerce_frame(frame)
    model: Any = bundle.model
    score = np.asarray(model.score(x), dtype=np.float64)
    flagged = np.asarray(bundle.model.predict_proba(x))[:, 1] > 0.5
    out = frame.copy()
    out[PREDICTED_COLUMN] = flagged.astype(np.int64)
    out[SCORE_COLUMN] = score
    write_table(out, output)
    console.print(
        f"{int(flagged.sum()):,} of {len(out):,} rows flagged by {bundle.kind}; written to {output}"
    )


# --- host ------------------------------------------------------------------------------------


@host_app.command()
@handle_errors
def load(
    cpu: Annotated[
        str, typer.Option("--cpu", help="How long to busy the CPU: 20s, 1.5m, 500ms.")
    ] = "20s",
    cores: Annotated[
        int | None, typer.Option("--cores", min=1, help="Busy cores; default all.")
    ] = None,
    memory_mb: Annotated[
        int, typer.Option("--memory-mb", min=0, help="Also hold this much memory.")
    ] = 0,
) -> None:
    """Busy this machine's CPU for a while (each worker stops by itself at the deadline)."""
    seconds = parse_duration(cpu)
    generator = CpuLoad(seconds=seconds, cores=cores, memory_mb=memory_mb)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        what = f"busy {generator.cores} core(s)" + (f" and {memory_mb} MB" if memory_mb else "")
        task = progress.add_task(what, total=seconds)
        generator.start()
        generator.wait(lambda elapsed: progress.update(task, completed=min(elapsed, seconds)))
        progress.update(task, completed=seconds)
    console.print(f"load done after {generator.elapsed:.1f}s")


def _history_size(model: Any) -> int:
    """Observations a detector looks at together (its window, or one row)."""
    window = getattr(model, "window", 1)
    return window if isinstance(window, int) and window > 0 else 1


@host_app.command()
@handle_errors
def sample(
    interval: Annotated[float, typer.Option(min=0.01, help="Seconds between samples.")] = 1.0,
    count: Annotated[int, typer.Option(min=1, help="Samples to take.")] = 5,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write them (.csv or .parquet).")
    ] = None,
    bundle_dir: Annotated[
        Path | None, typer.Option("--bundle", "-b", help="Score each sample with this detector.")
    ] = None,
) -> None:
    """Print this machine's metrics every INTERVAL seconds, scored when --bundle is given."""
    bundle = _load_bundle(bundle_dir) if bundle_dir is not None else None
    model: Any = bundle.model if bundle is not None else None
    history: deque[Observation] = deque(maxlen=_history_size(model))
    taken: list[dict[str, Any]] = []
    for observation in watch(interval, count, sampler=HostSampler()):
        row: dict[str, Any] = dict(observation)
        line = (
            f"{observation['timestamp'][11:19]} cpu {observation['cpu_percent']:5.1f}% "
            f"mem {observation['memory_percent']:5.1f}% disk {observation['disk_percent']:5.1f}% "
            f"rx {observation['net_rx_bytes_per_s'] / 1e3:,.1f} kB/s "
            f"tx {observation['net_tx_bytes_per_s'] / 1e3:,.1f} kB/s"
        )
        if bundle is not None:
            history.append(observation)
            frame = bundle.schema.to_frame([dict(o) for o in history])
            score = float(np.asarray(model.score(frame))[-1])
            flagged = bool(np.asarray(model.predict_proba(frame))[-1, 1] > 0.5)
            row[SCORE_COLUMN] = score
            row[PREDICTED_COLUMN] = int(flagged)
            line += f" score {score:.3f}" + (" [bold red]ANOMALY[/]" if flagged else "")
        console.print(line)
        taken.append(row)
    if output is not None:
        write_table(pd.DataFrame(taken), output)
        console.print(f"{len(taken)} observation(s) written to {output}")
