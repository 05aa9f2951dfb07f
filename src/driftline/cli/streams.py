"""`driftline consume`: predict feature events from Redis Streams or Kafka (see
driftline.streams)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import uuid
from types import FrameType
from typing import Annotated, Any

import typer

from driftline.cli.common import console, handle_errors, state

__all__ = ["consume", "register_command"]

log = logging.getLogger(__name__)


def _default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@handle_errors
def consume(
    ctx: typer.Context,
    source_url: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="kafka://HOST:PORT/TOPIC, or a redis:// URL (default DRIFTLINE_REDIS_URL, "
            "stream DRIFTLINE_STREAM_INPUT).",
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Consumer group (default DRIFTLINE_STREAM_GROUP)."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            help="Output stream or topic (default DRIFTLINE_STREAM_OUTPUT; Kafka: "
            "<TOPIC>.predictions).",
        ),
    ] = None,
    dead_letter: Annotated[
        str | None,
        typer.Option(
            "--dead-letter",
            help="Dead-letter stream or topic (default <input>:dead; Kafka: <TOPIC>.dead).",
        ),
    ] = None,
    labels_topic: Annotated[
        str | None,
        typer.Option(
            "--labels-topic",
            help="Kafka: also consume label events ({request_id, label}) from this topic.",
        ),
    ] = None,
    session_timeout_ms: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Kafka: how long the group waits for a silent member before handing its "
            "partitions over (default 45000).",
        ),
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(
            "--consumer",
            help="Name in the consumer group (default hostname-pid). Reuse it after a restart "
            "to resume this consumer's unacked events at once.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, max=10_000, help="Events per batch (default DRIFTLINE_STREAM_BATCH_SIZE)."
        ),
    ] = None,
    block_ms: Annotated[
        int, typer.Option(min=0, max=60_000, help="Longest wait for new events per read.")
    ] = 1_000,
    max_events: Annotated[
        int | None, typer.Option(min=0, help="Stop after this many events (demos, tests).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve Prometheus /metrics on 127.0.0.1:PORT."),
    ] = None,
) -> None:
    """Predict feature events from a Redis stream (DRIFTLINE_STREAM_INPUT) or a Kafka topic
    (--source kafka://HOST:PORT/TOPIC) with the champion: log each prediction, publish it to
    the output, then ack it (at-least-once delivery, one row per event in the store). Label
    events are stored too. The traffic is profiled for drift monitoring like HTTP traffic.
    SIGTERM or Ctrl-C finishes the batch in hand."""
    from driftline.logs import configure_logging  # noqa: PLC0415 — lazy: fast --help
    from driftline.monitoring.window import WindowRecorder  # noqa: PLC0415 — lazy: fast --help
    from driftline.registry import Registry  # noqa: PLC0415 — lazy: fast --help
    from driftline.service.metrics import ServiceMetrics, WriterMetricsListener  # noqa: PLC0415 — lazy: fast --help
    from driftline.store import StoreTimeouts, StoreWriter, open_store, record_handlers  # noqa: PLC0415 — lazy: fast --help
    from driftline.streams import StreamConsumer, open_source  # noqa: PLC0415 — lazy: fast --help

    settings = state(ctx).settings
    if batch_size is not None:
        settings = settings.model_copy(update={"stream_batch_size": batch_size})
    settings.ensure_home()
    configure_logging(settings)
    name = consumer or _default_consumer_name()
    source = open_source(
        source_url,
        settings,
        consumer=name,
        group=group,
        output=output,
        dead_letter=dead_letter,
        labels=labels_topic,
        block_ms=block_ms,
        session_timeout_ms=session_timeout_ms,
    )
    metrics = ServiceMetrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server  # noqa: PLC0415 — only with --metrics-port

        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    store = open_store(settings.database_url, timeouts=StoreTimeouts.from_settings(settings))
    writer = StoreWriter(
        store.engine,
        store.sessions,
        record_handlers(),
        settings.spill_dir,
        queue_size=settings.queue_size,
        batch_size=settings.write_batch_size,
        flush_interval=settings.flush_interval_seconds,
        listener=WriterMetricsListener(metrics),
    )
    writer.start()
    metrics.store_up.set(1)
    worker = StreamConsumer.from_settings(
        settings,
        source,
        Registry.from_settings(settings, store),
        writer,
        metrics=metrics,
        block_ms=block_ms,
        # Live profiles for drift monitoring, as an API worker keeps them (unique per process:
        # buckets are cumulative snapshots keyed by worker).
        recorder=WindowRecorder(
            worker_id=f"stream-{name}-{uuid.uuid4().hex[:6]}",
            bucket_seconds=settings.monitor_bucket_seconds,
            sample_rows=settings.monitor_sample_rows,
        ),
    )

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in hand (again to stop at once)", signum)
        worker.stop()
        signal.signal(signum, previous[signum])

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, _stop)
    try:
        source.ensure_group()
        console.print(
            f"consuming {source.name} as {name} in group {group or settings.stream_group} "
            f"(output {getattr(source, 'output', '?')}, dead letters "
            f"{getattr(source, 'dead_letter_stream', '?')})"
        )
        stats = worker.run(max_events=max_events)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.stop()
        source.close()
        store.dispose()
    console.print(
        f"{stats.events} event(s): {stats.predicted} predicted, "
        f"{stats.dead_lettered} dead-lettered, {stats.labels} label(s) stored, "
        f"{stats.claimed} claimed from other consumers, "
        f"{stats.spilled} spilled while the store was down"
    )


def register_command(app: typer.Typer) -> None:
    """Mount ``consume`` on the ``driftline`` app."""
    app.command()(consume)
