"""PostgreSQL goes away while events flow: consumption goes on (predictions spill to the local
log), nothing is lost, and the spill is replayed into the store once it is back.
On Redis Streams and on Kafka."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from driftline.config import Settings
from driftline.models.bundle import ModelBundle
from driftline.registry import Registry
from driftline.store import open_store
from driftline.store.tables import Prediction
from tests.streams.conftest import Broker, MakeConsumer, loan_records
from tests.support.tcpproxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def test_a_store_outage_neither_loses_events_nor_blocks_consumption(
    pg_url: str,
    broker: Broker,
    stream_settings: Settings,
    trained_bundle: ModelBundle,
    make_consumer: MakeConsumer,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    proxied = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = stream_settings.model_copy(update={"database_url": proxied})
    direct = open_store(pg_url)
    try:
        Registry.from_settings(settings, direct).register(trained_bundle, actor="test")
        running = make_consumer(settings=settings, source=broker.source("c1"))

        broker.produce(loan_records(100), request_ids=[f"b-{i}" for i in range(100)])
        before = running.consumer.run(max_events=100)
        assert before.spilled == 0

        proxy.cut()
        broker.produce(loan_records(200), request_ids=[f"d-{i}" for i in range(200)])
        started = time.monotonic()
        during = running.consumer.run(max_events=200)
        took = time.monotonic() - started
        assert during.predicted == 300 and during.spilled == 200  # stats are cumulative
        assert took < 10, f"consumption blocked for {took:.1f}s during the outage"
        assert broker.unacked() == 0  # acked once spilled
        assert not running.writer.store_up
        assert list(settings.spill_dir.glob("spill-*.jsonl"))

        proxy.restore()
        deadline = time.monotonic() + 20
        # The writer thread probes the store, replays the spill log and marks the store up;
        # wait for the whole of it (the spill can be empty a moment before the store is up).
        while time.monotonic() < deadline and not (
            running.writer.spill_pending == 0 and running.writer.store_up
        ):
            time.sleep(0.1)
        assert running.writer.spill_pending == 0 and running.writer.store_up

        broker.produce(loan_records(100), request_ids=[f"a-{i}" for i in range(100)])
        running.consumer.run(max_events=100)
        running.writer.stop()

        with direct.sessions() as session:
            ids = set(session.scalars(select(Prediction.request_id)))
            count = session.scalar(select(func.count()).select_from(Prediction))
        expected = {f"{p}-{i}" for p, n in (("b", 100), ("d", 200), ("a", 100)) for i in range(n)}
        assert ids == expected and count == 400
        durable = [f["durable"] for f in broker.outputs(expect=400)]
        assert durable == ["store"] * 100 + ["spill"] * 200 + ["store"] * 100
        assert not list(settings.spill_dir.glob("spill-*"))
    finally:
        proxy.close()
        direct.dispose()
