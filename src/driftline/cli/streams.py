"""`driftline consume`: predict feature events from a Redis stream (see driftline.streams)."""

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
from driftline.logs import configure_logging
from driftline.monitoring.window import WindowRecorder
from driftline.registry import Registry
from driftline.service.metrics import ServiceMetrics, WriterMetricsListener
from driftline.store import StoreTimeouts, StoreWriter, open_store, record_handlers
from driftline.streams import RedisStreamSource, StreamConsumer

__all__ = ["consume", "register_command"]

log = logging.getLogger(__name__)


def _default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@handle_errors
def consume(
    ctx: typer.Context,
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
    """Predict feature events from DRIFTLINE_STREAM_INPUT with the champion: log each
    prediction, publish it to DRIFTLINE_STREAM_OUTPUT, then ack it (at-least-once delivery,
    one row per event in the store). The traffic is profiled for drift monitoring like HTTP
    traffic. SIGTERM or Ctrl-C finishes the batch in hand."""
    settings = state(ctx).settings
    if batch_size is not None:
        settings = settings.model_copy(update={"stream_batch_size": batch_size})
    settings.ensure_home()
    configure_logging(settings)
    name = consumer or _default_consumer_name()
    metrics = ServiceMetrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

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
    source = RedisStreamSource.from_settings(settings, consumer=name, block_ms=block_ms)
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
            f"consuming {settings.stream_input} as {name} in group {settings.stream_group} "
            f"(output {settings.stream_output}, dead letters {source.dead_letter_stream})"
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
        f"{stats.dead_lettered} dead-lettered, {stats.claimed} claimed from other consumers, "
        f"{stats.spilled} spilled while the store was down"
    )


def register_command(app: typer.Typer) -> None:
    """Mount ``consume`` on the ``driftline`` app."""
    app.command()(consume)
