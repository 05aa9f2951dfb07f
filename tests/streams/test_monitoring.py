"""Stream traffic feeds drift monitoring as HTTP traffic does: live profiles in window buckets
that the monitor merges; and each batch is a span. Real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import time

import pytest
import redis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftline.config import Settings
from driftline.monitoring.monitor import MonitorOptions, run_monitor, window_summary
from driftline.monitoring.window import WindowRecorder
from driftline.registry import Registry
from driftline.store import open_store
from driftline.streams import encode_event, produce
from tests.streams.conftest import Keys, MakeConsumer, add, loan_records

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("champion")]


def test_stream_traffic_is_profiled_for_the_monitor(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    records = loan_records(60)
    produce(stream_settings.redis_url, keys.input, records[:30])
    bad = dict(records[0], age="forty")  # fails the schema: a data-quality signal
    add(rds, keys.input, encode_event(bad))
    add(rds, keys.input, encode_event({k: v for k, v in records[1].items() if k != "income"}))
    produce(stream_settings.redis_url, keys.input, records[30:])
    recorder = WindowRecorder(worker_id="stream-test", bucket_seconds=60.0)
    running = make_consumer(recorder=recorder)

    stats = running.consumer.run(max_events=62)  # writes its buckets when it returns

    assert (stats.predicted, stats.dead_lettered) == (60, 2)
    now = time.time()
    summary = window_summary(running.store, version=1, start=now - 3_600, end=now + 60)
    assert summary.rows == 60 and summary.requests == 60
    assert summary.rejected == 2 and summary.errors == 0
    assert summary.outputs is not None and summary.outputs.n_rows == 60
    assert summary.p95_latency_ms is not None

    registry = Registry.from_settings(stream_settings, running.store)
    body = run_monitor(
        store=running.store, registry=registry, options=MonitorOptions(), persist=False
    )
    assert body["rows"] == 60 and body["rejected"] == 2
    assert body["data_drift"]["n_current_rows"] == 60


def test_buckets_are_written_periodically_while_consuming(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    produce(stream_settings.redis_url, keys.input, loan_records(20))
    recorder = WindowRecorder(worker_id="stream-periodic", bucket_seconds=60.0)
    running = make_consumer(recorder=recorder, flush_seconds=0.05)
    running.consumer.check_for_new_model()
    assert running.consumer.step() == 20
    time.sleep(0.06)
    assert running.consumer.flush_profiles() == 1  # the open bucket, as a cumulative snapshot
    store = open_store(stream_settings.database_url, migrate=False)
    try:
        now = time.time()
        assert window_summary(store, version=1, start=now - 3_600, end=now + 60).rows == 20
    finally:
        store.dispose()
    assert running.consumer.flush_profiles() == 0  # nothing changed since


def test_each_batch_is_a_span_with_its_durable_write(
    rds: redis.Redis,
    keys: Keys,
    stream_settings: Settings,
    make_consumer: MakeConsumer,
    spans: InMemorySpanExporter,
) -> None:
    produce(stream_settings.redis_url, keys.input, loan_records(10))
    add(rds, keys.input, {"features": "{oops"})
    running = make_consumer("traced")
    running.consumer.run(max_events=11)

    [batch] = [s for s in spans.get_finished_spans() if s.name == "driftline.stream.batch"]
    assert batch.attributes == {
        "driftline.stream": keys.input,
        "driftline.stream.consumer": "traced",
        "driftline.stream.events": 11,
        "driftline.model.version": 1,
        "driftline.rows": 10,
        "driftline.stream.dead_lettered": 1,
    }
    assert batch.context is not None
    [write] = [s for s in spans.get_finished_spans() if s.name == "driftline.writer.write_now"]
    assert write.parent is not None and write.parent.span_id == batch.context.span_id
    assert write.attributes is not None
    assert write.attributes["driftline.write.kind"] == "prediction"
    assert write.attributes["driftline.rows"] == 10
