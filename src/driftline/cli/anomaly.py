"""`driftline anomaly ...` and `driftline host ...`: anomaly detection on host metrics.

Long on purpose (600+ lines): two groups of thin commands, mostly options and help text.

Two Typer sub-apps, mounted by the main CLI:

``anomaly``
    ``generate-dataset`` (synthetic host metrics with labeled anomalies), ``compare`` (every
    detector on the same split), ``train`` (fit one detector and save its bundle),
    ``predict`` (add ``predicted_anomaly`` and ``anomaly_score`` to a table) and
    ``import-prometheus`` (a training table from Prometheus range queries).
``host``
    ``watch`` (learn a baseline, score every observation live, export /metrics, publish to a
    stream, retrain when normal changes), ``sample`` (this machine's metrics, optionally
    scored by a detector) and ``load`` (busy the CPU for a while, to watch a detector catch
    it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.markup import escape
from rich.table import Table

from driftline.cli.common import (
    JsonFlag,
    console,
    err_console,
    fail,
    fmt_metric,
    handle_errors,
    print_json,
    state,
)
from driftline.durations import parse_duration
from driftline.errors import DataError

if TYPE_CHECKING:
    from rich.progress import Progress

    from driftline.anomaly.host import Observation
    from driftline.anomaly.watch_io import MetricsServer, StreamPublisher
    from driftline.anomaly.watcher import WatchEvent
    from driftline.models.bundle import ModelBundle
    from driftline.registry import Registry

__all__ = ["anomaly_app", "host_app"]

DEFAULT_BUNDLE = Path("anomaly-model")
DEFAULT_MODEL_NAME = "host-anomaly"
DEFAULT_HOST_STREAM = "driftline:host"
DEFAULT_METRICS_PORT = 9108
#: `host watch --drift-threshold`: HOST_DRIFT_POLICY's critical distance (a test checks they
#: agree; the watcher module loads scikit-learn, too slow to import for a help screen).
DEFAULT_DRIFT_THRESHOLD: Final = 1.0

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


def _spinner(*, as_json: bool = False) -> Progress:
    """Progress on stdout, or on stderr when stdout carries --json."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415 — lazy: fast --help

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console if as_json else console,
    )


def _registry(ctx: typer.Context, model_name: str) -> Registry:
    from driftline.registry import Registry  # noqa: PLC0415 — lazy: fast --help

    st = state(ctx)
    return Registry(
        tracking_uri=st.settings.mlflow_tracking_uri,
        registry_uri=st.settings.mlflow_registry_uri,
        model_name=model_name,
        store=st.store,
        cache_dir=st.settings.cache_dir,
        artifact_dir=st.settings.artifact_dir,
    )


def _load_bundle(folder: Path) -> ModelBundle:
    from driftline.models.bundle import ModelBundle  # noqa: PLC0415 — lazy: fast --help

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
    as_json: JsonFlag = False,
) -> None:
    """Write seeded synthetic host metrics with labeled anomalies of several kinds."""
    from driftline.anomaly.dataset import KIND_COLUMN, generate_host_metrics  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.io import write_table  # noqa: PLC0415 — lazy: fast --help

    frame = generate_host_metrics(rows, seed=seed, anomaly_rate=anomaly_rate)
    write_table(frame, output)
    counts = {str(k): int(n) for k, n in frame[KIND_COLUMN].value_counts().sort_index().items()}
    if as_json:
        print_json({"output": str(output), "rows": len(frame), "kinds": counts})
        return
    table = Table(title=f"{len(frame):,} rows written to {output}")
    table.add_column("anomaly kind")
    table.add_column("rows", justify="right")
    for kind, count in counts.items():
        table.add_row(kind, f"{count:,}")
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
    as_json: JsonFlag = False,
) -> None:
    """Train every detector on the same split of DATA; print precision, recall, F1, ROC AUC."""
    from driftline.anomaly.compare import compare_detectors, comparison_table  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.detector_training import DETECTOR_KINDS  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.io import read_table  # noqa: PLC0415 — lazy: fast --help

    with _spinner(as_json=as_json) as progress:
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
    if as_json:  # one object per detector, the table's row with the holdout's size
        print_json([dataclasses.asdict(r) for r in rows])
        return
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
    ] = DEFAULT_MODEL_NAME,
    as_json: JsonFlag = False,
) -> None:
    """Train a detector on DATA, print holdout metrics (when labeled), save the bundle and
    register it (the first version of MODEL_NAME becomes its champion). Serve it with
    `DRIFTLINE_MODEL_NAME=host-anomaly driftline serve`."""
    from driftline.anomaly.dataset import LABEL_COLUMN  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.detector_training import detector_kind, train_anomaly_bundle  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.lstm import EXTRA_HINT, torch_available  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.io import read_table  # noqa: PLC0415 — lazy: fast --help
    from driftline.registry import CHAMPION  # noqa: PLC0415 — lazy: fast --help

    if detector_kind(kind) == "lstm_ae" and not torch_available():
        raise fail(f"the LSTM autoencoder needs PyTorch, the 'lstm' extra: {EXTRA_HINT}")
    with _spinner(as_json=as_json) as progress:
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
    if as_json:
        bundle.save(output)
        version = None
        if register:
            registry = _registry(ctx, model_name)
            version = registry.register(bundle, actor="cli", reason=f"trained on {data.name}")
        print_json(
            {
                "kind": bundle.kind,
                "labeled": LABEL_COLUMN in frame.columns,
                "metrics": bundle.metrics,
                "output": str(output),
                "model_name": model_name if register else None,
                "version": version,
            }
        )
        return
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
        registry = _registry(ctx, model_name)
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
    import numpy as np  # noqa: PLC0415 — lazy: fast --help

    from driftline.anomaly.detector_training import PREDICTED_COLUMN, SCORE_COLUMN  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.io import read_table, write_table  # noqa: PLC0415 — lazy: fast --help

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


@anomaly_app.command("import-prometheus")
@handle_errors
def import_prometheus_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the table (.csv or .parquet).")
    ],
    url: Annotated[
        str, typer.Option("--url", help="Prometheus base URL.")
    ] = "http://127.0.0.1:9090",
    query: Annotated[
        list[str] | None,
        typer.Option(
            "--query",
            "-q",
            help="NAME=PROMQL, one column per series (repeat). Default: the host watcher's "
            "gauges as cpu_percent, memory_percent, disk_percent, net_rx/tx_bytes_per_s.",
        ),
    ] = None,
    start: Annotated[
        str, typer.Option(help="Start: now-1h, -30m, UNIX seconds or ISO 8601 (UTC).")
    ] = "now-1h",
    end: Annotated[str, typer.Option(help="End, as --start.")] = "now",
    step: Annotated[str, typer.Option(help="Seconds between rows: 15s, 1m, 500ms.")] = "15s",
    keep_missing: Annotated[
        bool, typer.Option("--keep-missing", help="Keep rows missing some value.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per HTTP request.")] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Build a training table from Prometheus range queries: a `timestamp` column and one
    column per series, one row per STEP; `driftline anomaly train OUTPUT` learns from it."""
    from driftline.anomaly.prometheus import (  # noqa: PLC0415 — lazy: fast --help
        HOST_QUERIES,
        import_prometheus,
        parse_query,
        parse_time,
    )
    from driftline.data.io import write_table  # noqa: PLC0415 — lazy: fast --help

    queries_ = [parse_query(q) for q in query] if query else None
    now = parse_time("now")
    t0, t1 = parse_time(start, now=now), parse_time(end, now=now)
    seconds = parse_duration(step, "--step")
    with _spinner(as_json=as_json) as progress:
        progress.add_task(f"querying {url}", total=None)
        frame = import_prometheus(
            url,
            queries_,
            start=t0,
            end=t1,
            step=seconds,
            dropna=not keep_missing,
            timeout=timeout,
        )
    write_table(frame, output)
    columns = [
        {
            "column": str(column),
            "values": int(frame[column].notna().sum()),
            "mean": float(frame[column].mean()),
        }
        for column in frame.columns[1:]
    ]
    if as_json:
        print_json(
            {
                "output": str(output),
                "rows": len(frame),
                "columns": columns,
            }
        )
        return
    table = Table(title=f"{len(frame):,} rows written to {output}")
    table.add_column("column")
    table.add_column("values", justify="right")
    table.add_column("mean", justify="right")
    for c in columns:
        table.add_row(str(c["column"]), f"{c['values']:,}", f"{c['mean']:.4g}")
    console.print(table)
    if queries_ is None:
        console.print(f"queries: the host watcher's gauges ({', '.join(HOST_QUERIES)})")


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
    from rich.progress import (  # noqa: PLC0415 — lazy: fast --help
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from driftline.anomaly.load import CpuLoad  # noqa: PLC0415 — lazy: fast --help

    seconds = parse_duration(cpu, "--cpu")
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
    import numpy as np  # noqa: PLC0415 — lazy: fast --help
    import pandas as pd  # noqa: PLC0415 — lazy: fast --help

    from driftline.anomaly.detector_training import PREDICTED_COLUMN, SCORE_COLUMN  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.host import HostSampler, watch  # noqa: PLC0415 — lazy: fast --help
    from driftline.data.io import write_table  # noqa: PLC0415 — lazy: fast --help

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


def _rows(text: str, interval: float, what: str) -> int:
    """Observations in a duration at ``interval`` seconds (at least the watcher's minimum)."""
    from driftline.anomaly.watcher import MIN_BASELINE_ROWS  # noqa: PLC0415 — lazy: fast --help

    rows = math.ceil(parse_duration(text, f"--{what.replace(' ', '-')}") / interval - 1e-9)
    if rows < MIN_BASELINE_ROWS and what in ("baseline", "drift window"):
        raise fail(
            f"the {what} must hold at least {MIN_BASELINE_ROWS} observations; {text} at "
            f"{interval:g}s intervals is {rows}"
        )
    return max(rows, 1)


class _Printer:
    """What `host watch` prints for each event."""

    def __init__(self, *, quiet: bool, model_name: str) -> None:
        self.quiet = quiet
        self.model_name = model_name
        self.flagged = 0
        self.scored = 0

    def __call__(self, event: WatchEvent) -> None:
        o = event.observation
        if event.baseline_progress is not None:
            done, total = event.baseline_progress
            if done in (1, total) or done % max(1, total // 10) == 0:
                console.print(
                    f"learning the baseline: {done}/{total} observations "
                    f"(cpu {o.get('cpu_percent', 0):.1f}%)"
                )
        if event.score is not None:
            self.scored += 1
            self.flagged += bool(event.flagged)
            if event.flagged or not self.quiet:
                line = (
                    f"{str(o.get('timestamp', ''))[11:19]} cpu {o.get('cpu_percent', 0):5.1f}% "
                    f"mem {o.get('memory_percent', 0):5.1f}% "
                    f"disk {o.get('disk_percent', 0):5.1f}% "
                    f"rx {o.get('net_rx_bytes_per_s', 0) / 1e3:,.1f} kB/s "
                    f"tx {o.get('net_tx_bytes_per_s', 0) / 1e3:,.1f} kB/s "
                    f"score {event.score:.3f}"
                )
                console.print(line + (" [bold red]ANOMALY[/]" if event.flagged else ""))
        if event.drift is not None and event.decision is not None:
            color = {"critical": "red", "warning": "yellow"}.get(event.drift.severity, "green")
            console.print(
                f"drift check: [{color}]{event.drift.severity}[/] — "
                f"{escape(event.decision.reasons[-1])}"
            )
        if event.trained is not None:
            t = event.trained
            where = (
                f"registered {self.model_name} version [bold]{t.version}[/] (champion)"
                if t.version is not None
                else "not registered"
            )
            console.print(
                f"[green]trained[/] {t.bundle.kind} on {t.rows} observations ({t.reason}); {where}"
            )


@host_app.command("watch")
@handle_errors
def watch_host(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between observations.")] = 1.0,
    baseline: Annotated[
        str, typer.Option(help="How long to learn normal when there is no model: 10m, 30s.")
    ] = "10m",
    duration: Annotated[
        str | None, typer.Option(help="Stop after this long (default: until Ctrl-C).")
    ] = None,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many observations.")
    ] = None,
    model_name: Annotated[
        str, typer.Option(help="Registered model to score with, and to register into.")
    ] = DEFAULT_MODEL_NAME,
    bundle_dir: Annotated[
        Path | None,
        typer.Option("--bundle", "-b", help="Score with this bundle instead of the champion."),
    ] = None,
    learn: Annotated[
        bool, typer.Option("--learn", help="Learn a new baseline even if a model exists.")
    ] = False,
    register: Annotated[
        bool, typer.Option(help="Register trained models (the newest becomes champion).")
    ] = True,
    kind: Annotated[
        str, typer.Option("--kind", "-k", help="Detector to train: iforest or lstm (extra).")
    ] = "iforest",
    contamination: Annotated[
        float, typer.Option(min=0.001, max=0.5, help="Expected anomaly share.")
    ] = 0.03,
    drift_window: Annotated[
        str, typer.Option(help="Length of one drift check's window of observations.")
    ] = "5m",
    confirmations: Annotated[
        int, typer.Option(min=1, help="Windows in a row with critical drift that retrain.")
    ] = 3,
    drift_threshold: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Critical drift: Wasserstein distance in reference standard deviations.",
        ),
    ] = DEFAULT_DRIFT_THRESHOLD,
    retrain: Annotated[
        bool, typer.Option(help="Retrain when the machine's normal changes.")
    ] = True,
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65_535, help="Port of /metrics; 0 turns it off.")
    ] = DEFAULT_METRICS_PORT,
    metrics_host: Annotated[str, typer.Option(help="Address /metrics listens on.")] = "127.0.0.1",
    stream: Annotated[
        str | None,
        typer.Option(help=f"Publish observations to this Redis stream ({DEFAULT_HOST_STREAM})."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(help="Redis to publish to (default DRIFTLINE_REDIS_URL); implies --stream."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the detector.")] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only anomalies and model events.")
    ] = False,
) -> None:
    """Watch this machine: learn a baseline (when no model exists), score every observation,
    export `driftline_host_*` on /metrics, publish to a Redis stream, and retrain when the
    machine's normal changes."""
    from driftline.anomaly.detector_training import detector_kind  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.host import HostSampler  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.lstm import EXTRA_HINT, torch_available  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.watch_io import HostMetrics, StreamPublisher, registering  # noqa: PLC0415 — lazy: fast --help
    from driftline.anomaly.watcher import HOST_DRIFT_POLICY, HostWatcher, WatchPolicy  # noqa: PLC0415 — lazy: fast --help
    from driftline.registry import CHAMPION  # noqa: PLC0415 — lazy: fast --help
    from driftline.streams.source import StreamError  # noqa: PLC0415 — lazy: fast --help

    resolved = detector_kind(kind)
    if resolved == "anomaly_rf":
        raise fail("the supervised forest needs labeled anomalies; watch with iforest or lstm")
    if resolved == "lstm_ae" and not torch_available():
        raise fail(f"the LSTM autoencoder needs PyTorch, the 'lstm' extra: {EXTRA_HINT}")
    critical = drift_threshold
    policy = WatchPolicy(
        baseline_rows=_rows(baseline, interval, "baseline"),
        kind=resolved,
        contamination=contamination,
        drift_window=_rows(drift_window, interval, "drift window"),
        confirmations=confirmations,
        retrain=retrain,
        drift=dataclasses.replace(
            HOST_DRIFT_POLICY,
            numeric_warning=min(HOST_DRIFT_POLICY.numeric_warning, critical / 2),
            numeric_critical=critical,
        ),
        seed=seed,
    )
    seconds = parse_duration(duration, "--duration") if duration is not None else None
    st = state(ctx)
    registry = (
        _registry(ctx, model_name) if register or (bundle_dir is None and not learn) else None
    )
    bundle: ModelBundle | None = None
    version: int | None = None
    if bundle_dir is not None:
        bundle = _load_bundle(bundle_dir)
        console.print(f"scoring with the {bundle.kind} bundle in {bundle_dir}")
    elif not learn and registry is not None:
        version = registry.alias(CHAMPION)
        if version is not None:
            bundle = registry.load(version)
            console.print(f"scoring with {model_name} version {version} (champion)")
    if bundle is None:
        console.print(
            f"no model yet: learning a baseline of {policy.baseline_rows} observations, "
            f"one every {interval:g}s"
        )

    watcher = HostWatcher(
        HostSampler(),
        policy=policy,
        bundle=bundle,
        version=version,
        register=registering(registry) if register and registry is not None else None,
    )
    metrics = HostMetrics()
    server: MetricsServer | None = None
    publisher: StreamPublisher | None = None
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        if metrics_port:
            server = metrics.serve(metrics_port, metrics_host)
            console.print(f"metrics on {server.url}")
        if stream is not None or redis_url is not None:
            publisher = StreamPublisher(
                redis_url or st.settings.redis_url,
                stream or DEFAULT_HOST_STREAM,
                maxlen=st.settings.stream_maxlen,
            )
            publisher.check()
            console.print(f"publishing observations to the stream {publisher.stream}")
        printer = _Printer(quiet=quiet, model_name=model_name)
        stream_failures = 0

        def on_event(event: WatchEvent) -> None:
            nonlocal stream_failures
            metrics.update(event)
            if publisher is not None:
                try:
                    publisher.publish(event)
                except StreamError as exc:
                    metrics.stream_errors.inc()
                    stream_failures += 1
                    if stream_failures == 1 or stream_failures % 100 == 0:
                        console.print(f"[yellow]warning:[/] {escape(str(exc))}")
            printer(event)

        with contextlib.suppress(ValueError):  # not the main thread: no SIGTERM handler
            signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
        try:
            taken = watcher.run(
                interval=interval, count=count, duration=seconds, on_event=on_event, stop=stop
            )
        except KeyboardInterrupt:
            taken = watcher.observations
        share = printer.flagged / printer.scored if printer.scored else 0.0
        console.print(
            f"{taken} observations, {printer.scored} scored, {printer.flagged} flagged "
            f"({share:.1%}); model version {watcher.version if watcher.version else '-'}"
        )
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.close()
        if publisher is not None:
            publisher.close()
