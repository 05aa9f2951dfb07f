"""`driftline consume` as real processes: one is killed with SIGKILL mid-stream and another
takes over (on Redis Streams and on Kafka); one is stopped with SIGTERM. Redis on
127.0.0.1:6379, a Kafka-API broker (Tansu), a SQLite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from driftline.config import Settings
from driftline.store import open_store
from driftline.store.tables import Prediction
from driftline.streams import produce
from tests.streams.conftest import (
    KAFKA_SESSION_TIMEOUT_MS,
    Broker,
    KafkaBroker,
    Keys,
    RedisBroker,
    loan_records,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.usefixtures("champion")]

# Runs the CLI exactly as the `driftline` entry point does.
CONSUME = """
import sys
from driftline.cli import app
app(sys.argv[1:], prog_name="driftline")
"""


def _consume(
    settings: Settings,
    name: str,
    *args: str,
    claim_idle_ms: int = 30_000,
    broker: Broker | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DRIFTLINE_HOME": str(settings.home),
        "DRIFTLINE_DATABASE_URL": settings.database_url,
        "DRIFTLINE_REDIS_URL": settings.redis_url,
        "DRIFTLINE_STREAM_INPUT": settings.stream_input,
        "DRIFTLINE_STREAM_OUTPUT": settings.stream_output,
        "DRIFTLINE_STREAM_GROUP": settings.stream_group,
        "DRIFTLINE_STREAM_CLAIM_IDLE_MS": str(claim_idle_ms),
        "DRIFTLINE_RELOAD_POLL_SECONDS": "1",
    }
    if broker is not None and isinstance(broker, KafkaBroker):
        args = (
            "--source",
            f"kafka://{broker.bootstrap}/{broker.input}",
            "--group",
            broker.group,
            "--session-timeout-ms",
            str(KAFKA_SESSION_TIMEOUT_MS),
            *args,
        )
    log = open(settings.home / f"consume-{name}.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            [sys.executable, "-c", CONSUME, "consume", "--consumer", name, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _wait_for(
    condition: Any, procs: list[subprocess.Popen[bytes]], home: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                logs = "".join(p.read_text() for p in sorted(home.glob("consume-*.log")))
                raise AssertionError(f"consumer exited with {proc.returncode}:\n{logs[-3000:]}")
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _group(rds: redis.Redis, keys: Keys) -> dict[str, Any]:
    return {g["name"]: g for g in rds.xinfo_groups(keys.input)}[keys.group]


def _rows(settings: Settings) -> tuple[set[str], int, set[str]]:
    store = open_store(settings.database_url, migrate=False)
    try:
        with store.sessions() as session:
            ids = set(session.scalars(select(Prediction.request_id)))
            count = int(session.scalar(select(func.count()).select_from(Prediction)) or 0)
            sources = set(session.scalars(select(Prediction.source).distinct()))
    finally:
        store.dispose()
    return ids, count, sources


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@pytest.fixture(params=["redis", "kafka"])
def broker(
    request: pytest.FixtureRequest, rds: redis.Redis, keys: Keys, stream_settings: Settings
) -> Broker:
    """Both brokers; the Kafka input topic has two partitions (commits per partition)."""
    if request.param == "redis":
        return RedisBroker(rds, keys, stream_settings)
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return KafkaBroker(bootstrap, stream_settings, tag=uuid.uuid4().hex[:12], partitions=2)


def _at_least(n: int, settings: Settings) -> Callable[[], bool]:
    return lambda: _rows(settings)[1] >= n


def test_a_consumer_killed_mid_stream_loses_nothing_and_duplicates_nothing(
    broker: Broker, stream_settings: Settings
) -> None:
    n = 2_000
    rids = [f"kill-{i}" if i % 3 == 0 else None for i in range(n)]
    event_ids = broker.produce(loan_records(n), request_ids=rids)
    expected = {rid or broker.request_id(eid) for rid, eid in zip(rids, event_ids, strict=True)}
    home = stream_settings.home

    first = _consume(
        stream_settings, "first", "--batch-size", "25", "--block-ms", "200", broker=broker
    )
    try:
        _wait_for(_at_least(300, stream_settings), [first], home, timeout=120)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        _stop(first)
    at_kill, _, _ = _rows(stream_settings)
    assert 0 < len(at_kill) < n, "the kill must land mid-stream"
    published_at_kill = len(broker.outputs(expect=len(at_kill)))
    held = published_at_kill - (n - broker.unacked())  # published, never acked
    assert 0 <= held <= 25  # one batch in hand at most
    if isinstance(broker, RedisBroker):
        pending = broker.rds.xinfo_consumers(broker.keys.input, broker.keys.group)
        assert held <= {c["name"]: c["pending"] for c in pending}.get("first", 0)

    second = _consume(
        stream_settings,
        "second",
        "--batch-size",
        "100",
        "--block-ms",
        "200",
        claim_idle_ms=300,
        broker=broker,
    )
    try:
        _wait_for(lambda: broker.unacked() == 0, [second], home, timeout=120)
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        _stop(second)

    ids, count, sources = _rows(stream_settings)
    assert ids == expected and count == n  # every event exactly once in the store
    assert sources == {"stream"}
    published = [fields["request_id"] for fields in broker.outputs(expect=n)]
    assert set(published) == expected  # every event published ...
    duplicates = len(published) - len(set(published))
    assert duplicates <= held  # ... and again only if it was in the dead hand
    assert broker.unacked() == 0
    assert broker.dead() == []
    log = (home / "consume-second.log").read_text()
    if held and isinstance(broker, RedisBroker):
        assert "claimed" in log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_finishes_the_batch_in_hand_and_metrics_are_served(
    rds: redis.Redis, keys: Keys, stream_settings: Settings
) -> None:
    n = 3_000
    produce(stream_settings.redis_url, keys.input, loan_records(n))
    port = _free_port()
    proc = _consume(stream_settings, "graceful", "--batch-size", "20", "--metrics-port", str(port))
    try:
        _wait_for(lambda: rds.xlen(keys.output) >= 200, [proc], stream_settings.home, 120)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        _stop(proc)
    assert "driftline_predictions_total{predicted_class=" in text
    assert "driftline_stream_events_total" in text
    group = _group(rds, keys)
    assert group["pending"] == 0  # the batch in hand was finished and acked
    ids, count, _ = _rows(stream_settings)
    assert count == len(ids) == group["entries-read"] < n  # everything read was logged
    assert rds.xlen(keys.output) == count
    assert "predicted" in (stream_settings.home / "consume-graceful.log").read_text()
