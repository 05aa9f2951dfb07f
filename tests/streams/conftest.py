"""Fixtures of the stream tests: the real Redis on 127.0.0.1:6379 with unique keys per test
(deleted afterwards), a registered champion, and in-process consumers over a SQLite store."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
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
from driftline.store import Store, StoreWriter, open_store, queries
from driftline.streams import RedisStreamSource, StreamConsumer, dead_letter_key

REDIS_URL = os.environ.get("DRIFTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
    source: RedisStreamSource
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
        **options: Any,
    ) -> Running:
        s = settings or stream_settings
        store = open_store(s.database_url)
        metrics = ServiceMetrics()
        writer = StoreWriter(
            store.engine,
            store.sessions,
            {
                "prediction": lambda rows, session: queries.insert_predictions(
                    rows, session=session
                ),
                "bucket": lambda rows, session: queries.upsert_buckets(rows, session=session),
            },
            s.spill_dir,
            flush_interval=0.2,
            retry_interval=0.2,
        )
        writer.start()
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
