"""What only Kafka has: partitions split across a consumer group and handed over when a member
leaves, lag per partition, a labels topic, the URL form of `driftline consume`. A real
Kafka-API broker (Tansu) on 127.0.0.1; the suite shared with Redis is in test_consumer.py."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import typer
from typer.testing import CliRunner

from driftline.cli.common import State
from driftline.cli.streams import register_command
from driftline.config import Settings
from driftline.errors import ConfigurationError
from driftline.store import open_store, queries
from driftline.streams import StreamError, StreamSource, encode_event, open_source
from driftline.streams.kafka_source import KafkaSource, parse_kafka_url
from tests.streams.conftest import (
    KAFKA_SESSION_TIMEOUT_MS,
    KafkaBroker,
    MakeConsumer,
    Running,
    loan_records,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def kafka(kafka_bootstrap: str, stream_settings: Settings) -> KafkaBroker:
    return KafkaBroker(kafka_bootstrap, stream_settings, tag=uuid.uuid4().hex[:12], partitions=2)


def _values(records: list[dict[str, object]]) -> list[bytes]:
    """Message values of feature events (missing values as null: JSON has no NaN)."""
    return [f'{{"features": {encode_event(r)["features"]}}}'.encode() for r in records]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def _stored_ids(settings: Settings) -> set[str]:
    store = open_store(settings.database_url, migrate=False)
    try:
        with store.sessions() as session:
            page = queries.list_predictions(session=session, limit=100_000)
    finally:
        store.dispose()
    return {item["request_id"] for item in page.items}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_kafka_source_implements_the_protocol(kafka: KafkaBroker) -> None:
    source = kafka.source("c1")
    try:
        assert isinstance(source, StreamSource)
    finally:
        source.close()


def test_urls_and_names_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="kafka://HOST:PORT/TOPIC"):
        parse_kafka_url("kafka://127.0.0.1:9092")
    with pytest.raises(ConfigurationError, match="A-Za-z0-9"):
        parse_kafka_url("kafka://127.0.0.1:9092/a:b")
    with pytest.raises(ConfigurationError, match="at most 97 characters"):
        KafkaSource("127.0.0.1:1", topic="t" * 98, group="g", consumer="c")
    with pytest.raises(ConfigurationError, match="a redis:// URL"):
        open_source("amqp://x", None, consumer="c")


def test_an_unreachable_broker_raises_stream_error() -> None:
    source = KafkaSource(
        f"127.0.0.1:{_closed_port()}", topic="t", group="g", consumer="c", timeout_seconds=1.0
    )
    try:
        with pytest.raises(StreamError, match="unreachable"):
            source.read(1, 10)
    finally:
        source.close()


@pytest.mark.usefixtures("champion")
def test_two_consumers_split_the_partitions_and_one_leaving_hands_its_share_over(
    kafka: KafkaBroker, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    members = [make_consumer(name, source=kafka.source(name)) for name in ("a", "b")]
    threads = [threading.Thread(target=m.consumer.run) for m in members]
    for t in threads:
        t.start()
    a, b = members
    everything = {(kafka.input, 0), (kafka.input, 1)}
    try:
        _wait(
            lambda: (
                a.source.partitions | b.source.partitions == everything
                and len(a.source.partitions) == len(b.source.partitions) == 1
            ),
            "the group splits the two partitions",
        )
        # Sent only now that each member owns one partition: both get work.
        first = [
            *kafka.send(kafka.input, _values(loan_records(20)), partition=0),
            *kafka.send(kafka.input, _values(loan_records(20, seed=6)), partition=1),
        ]
        _wait(lambda: kafka.unacked() == 0, "the first 40 events are acked")
        assert a.consumer.stats.predicted == b.consumer.stats.predicted == 20

        [(_, left_behind)] = b.source.partitions
        b.consumer.stop()  # b leaves the group (close), handing its partition over
        threads[1].join(30)
        b.source.close()
        _wait(lambda: a.source.partitions == everything, "a takes over b's partition")
        second = kafka.send(kafka.input, _values(loan_records(30, seed=7)), partition=left_behind)
        _wait(lambda: kafka.unacked() == 0, "the next 30 events are acked")
        assert (a.consumer.stats.predicted, b.consumer.stats.predicted) == (50, 20)
    finally:
        for m in members:
            m.consumer.stop()
        for t in threads:
            t.join(30)
    assert _stored_ids(stream_settings) == set(first) | set(second)  # one row each


def _lag(running: Running, partition: int, topic: str) -> float | None:
    return running.metrics.registry.get_sample_value(
        "driftline_stream_lag_events", {"stream": topic, "partition": str(partition)}
    )


@pytest.mark.usefixtures("champion")
def test_lag_per_partition_is_exported(kafka: KafkaBroker, make_consumer: MakeConsumer) -> None:
    kafka.send(kafka.input, _values(loan_records(6)), partition=0)
    kafka.send(kafka.input, _values(loan_records(4)), partition=1)
    running = make_consumer(source=kafka.source("c1"))
    running.consumer.run(max_events=10)
    running.consumer.export_lag()
    assert _lag(running, 0, kafka.input) == 0 and _lag(running, 1, kafka.input) == 0

    kafka.send(kafka.input, _values(loan_records(3)), partition=0)
    kafka.send(kafka.input, _values(loan_records(2)), partition=1)
    read: list[str] = []
    _wait(lambda: len(read.extend(e.id for e in running.source.read(10, 100)) or read) == 5, "read")
    lag = running.consumer.export_lag()  # read, not acked: still lag
    assert lag == {(kafka.input, 0): 3, (kafka.input, 1): 2}
    assert _lag(running, 0, kafka.input) == 3 and _lag(running, 1, kafka.input) == 2
    running.source.ack([i for i in read if i.split("/")[1] == "0"])
    assert running.consumer.export_lag() == {(kafka.input, 0): 0, (kafka.input, 1): 2}
    assert _lag(running, 0, kafka.input) == 0


@pytest.mark.usefixtures("champion")
def test_labels_arrive_on_their_own_topic_and_bad_messages_are_dead_lettered(
    kafka: KafkaBroker, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    records = loan_records(5)
    kafka.produce(records, request_ids=[f"k-{i}" for i in range(5)])
    kafka.send(kafka.input, [b"not json at all"])
    labels = [{"request_id": f"k-{i}", "label": i % 2} for i in range(5)]
    kafka.send(kafka.labels, [json.dumps(x).encode() for x in labels])
    kafka.send(kafka.labels, [json.dumps({"label": 1}).encode()])  # no request id
    running = make_consumer(source=kafka.source("c1", labels=True))
    stats = running.consumer.run(max_events=12)

    assert (stats.predicted, stats.labels, stats.dead_lettered) == (5, 5, 2)
    store = open_store(stream_settings.database_url, migrate=False)
    try:
        with store.sessions() as session:
            page = queries.list_predictions(session=session, limit=100)
    finally:
        store.dispose()
    assert {i["request_id"]: i["label"] for i in page.items} == {
        f"k-{i}": str(i % 2) for i in range(5)
    }
    dead = {d["reason"]: d for d in kafka.dead(expect=2)}
    assert set(dead) == {"malformed"} and len(kafka.dead(expect=2)) == 2
    errors = [json.loads(d["errors"])[0]["loc"] for d in kafka.dead(expect=2)]
    assert sorted(errors) == [["features"], ["request_id"]]
    assert kafka.unacked() == 0
    value = running.metrics.registry.get_sample_value(
        "driftline_stream_events_total", {"outcome": "label"}
    )
    assert value == 5


def _app(settings: Settings) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = State(settings)

    register_command(app)
    return app


@pytest.mark.usefixtures("champion")
def test_the_consume_command_on_a_kafka_url(
    kafka: KafkaBroker, stream_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("driftline.logs.configure_logging", lambda settings: None)
    kafka.add({"features": json.dumps({"nonsense": 1})})
    ids = kafka.produce(loan_records(29))
    result = CliRunner().invoke(
        _app(stream_settings),
        [
            "consume",
            "--source",
            f"kafka://{kafka.bootstrap}/{kafka.input}",
            "--group",
            kafka.group,
            "--session-timeout-ms",
            str(KAFKA_SESSION_TIMEOUT_MS),
            "--consumer",
            "cli",
            "--max-events",
            "30",
            "--block-ms",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "30 event(s): 29 predicted, 1 dead-lettered" in result.output
    assert f"consuming {kafka.input} as cli in group {kafka.group}" in result.output
    published = [o["request_id"] for o in kafka.outputs(expect=29)]
    assert sorted(published) == sorted(ids)  # request id: topic/partition/offset
    assert [d["reason"] for d in kafka.dead(expect=1)] == ["validation"]
    assert _stored_ids(stream_settings) == set(ids)
    assert kafka.unacked() == 0
