"""The Redis source on its own, broker failures, and the `consume` command in-process."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence

import pytest
import redis
import typer
from typer.testing import CliRunner

from driftline.cli.common import State
from driftline.cli.streams import register_command
from driftline.config import Settings
from driftline.monitoring.monitor import window_summary
from driftline.store import open_store
from driftline.streams import (
    RedisStreamSource,
    StreamError,
    StreamSource,
    encode_event,
    produce,
)
from tests.streams.conftest import Broker, Keys, MakeConsumer, add, loan_records

pytestmark = pytest.mark.timeout(90)


def _source(settings: Settings, name: str = "c1") -> RedisStreamSource:
    return RedisStreamSource.from_settings(settings, consumer=name, block_ms=50)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_redis_source_implements_the_protocol(stream_settings: Settings) -> None:
    source = _source(stream_settings)
    try:
        assert isinstance(source, StreamSource)
    finally:
        source.close()


def test_group_creation_is_idempotent_and_reads_resume_own_pending_first(
    rds: redis.Redis, keys: Keys, stream_settings: Settings
) -> None:
    ids = produce(stream_settings.redis_url, keys.input, loan_records(5))
    source = _source(stream_settings)
    try:
        source.ensure_group()
        source.ensure_group()  # BUSYGROUP is fine
        first = source.read(3, 50)
        assert [e.id for e in first] == ids[:3]  # a new group starts at the beginning
        assert [e.id for e in source.read(3, 50)] == ids[3:]  # then new events
        source.ack(ids[3:])
        source.rewind()  # after a failed batch: our unacked events come back first ...
        assert source.read(3, 50) == first
        restarted = _source(stream_settings)  # so does a restart under the same name
        try:
            assert restarted.read(3, 50) == first
            restarted.ack([e.id for e in first])
            assert restarted.read(3, 50) == []  # ... then new ones (none left)
        finally:
            restarted.close()
    finally:
        source.close()


def test_claims_only_take_entries_idle_long_enough(
    rds: redis.Redis, keys: Keys, stream_settings: Settings
) -> None:
    produce(stream_settings.redis_url, keys.input, loan_records(4))
    holder = _source(stream_settings, "holder")
    taker = _source(stream_settings, "taker")
    patient = RedisStreamSource.from_settings(
        stream_settings.model_copy(update={"stream_claim_idle_ms": 60_000}), consumer="patient"
    )
    try:
        assert len(holder.read(4, 50)) == 4
        assert patient.claim_stale(10) == []
        time.sleep(0.3)
        claimed = taker.claim_stale(10)
        assert len(claimed) == 4 and claimed[0].fields["features"].startswith("{")
        owners = {c["name"]: c["pending"] for c in rds.xinfo_consumers(keys.input, keys.group)}
        assert owners["taker"] == 4 and owners["holder"] == 0
    finally:
        for s in (holder, taker, patient):
            s.close()


def test_an_unreachable_broker_raises_stream_error(stream_settings: Settings) -> None:
    settings = stream_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"}
    )
    source = _source(settings)
    try:
        with pytest.raises(StreamError, match="unreachable"):
            source.read(1, 10)
    finally:
        source.close()


def fail_publish_once(source: StreamSource) -> StreamSource:
    """The first publish of ``source`` fails as a broker failure would."""
    publish = source.publish
    failed: list[bool] = []

    def flaky(entries: Sequence[Mapping[str, str]]) -> None:
        if not failed:
            failed.append(True)
            raise StreamError("simulated broker failure")
        publish(entries)

    source.publish = flaky  # type: ignore[method-assign]
    return source


@pytest.mark.usefixtures("champion")
def test_a_batch_that_fails_half_way_is_delivered_again_and_logged_once(
    broker: Broker, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    broker.produce(loan_records(30), request_ids=[f"r-{i}" for i in range(30)])
    source = fail_publish_once(broker.source("c1", claim_idle_ms=60_000))
    running = make_consumer(source=source)
    stats = running.consumer.run(max_events=30)
    assert stats.failed_batches == 1 and stats.predicted == 30
    published = [f["request_id"] for f in broker.outputs(expect=30)]
    assert sorted(published) == sorted(f"r-{i}" for i in range(30))  # none lost, none twice
    assert broker.unacked() == 0
    value = running.metrics.registry.get_sample_value(
        "driftline_stream_batch_failures_total", {"reason": "stream"}
    )
    assert value == 1


def _app(settings: Settings) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = State(settings)

    register_command(app)
    return app


@pytest.mark.usefixtures("champion")
def test_the_consume_command(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("driftline.logs.configure_logging", lambda settings: None)
    add(rds, keys.input, encode_event({"nonsense": 1}))
    produce(stream_settings.redis_url, keys.input, loan_records(29))
    result = CliRunner().invoke(
        _app(stream_settings),
        ["consume", "--consumer", "cli", "--max-events", "30", "--block-ms", "100"],
    )
    assert result.exit_code == 0, result.output
    assert "30 event(s): 29 predicted, 1 dead-lettered" in result.output
    assert rds.xlen(keys.output) == 29 and rds.xlen(keys.dead) == 1
    store = open_store(stream_settings.database_url, migrate=False)
    try:  # profiled for the monitor, as HTTP traffic is
        now = time.time()
        summary = window_summary(store, version=1, start=now - 3_600, end=now + 60)
    finally:
        store.dispose()
    assert summary.rows == 29 and summary.rejected == 1


def test_the_consume_command_without_redis_fails_in_one_line(
    stream_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("driftline.logs.configure_logging", lambda settings: None)
    settings = stream_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"}
    )
    result = CliRunner().invoke(_app(settings), ["consume", "--max-events", "1"])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output


def test_the_redis_lag_counts_what_the_group_has_not_acked(
    rds: redis.Redis, keys: Keys, stream_settings: Settings
) -> None:
    ids = produce(stream_settings.redis_url, keys.input, loan_records(7))
    source = _source(stream_settings)
    try:
        assert [e.id for e in source.read(3, 50)] == ids[:3]
        assert source.lag() == {(keys.input, 0): 7}  # 4 never delivered + 3 pending
        source.ack(ids[:3])
        assert source.lag() == {(keys.input, 0): 4}
    finally:
        source.close()
