"""The stream consumer against the real Redis on 127.0.0.1:6379 (and, for the tests taking
``broker``, a real Kafka-API broker too) and a SQLite store."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import redis

from driftline.config import Settings
from driftline.models.base import Predictions
from driftline.models.bundle import ModelBundle
from driftline.registry import CHAMPION, Registry
from driftline.store import open_store, queries
from driftline.store.tables import Label
from driftline.streams import RedisStreamSource, encode_event, produce
from tests.streams.conftest import (
    Broker,
    Crash,
    Keys,
    MakeConsumer,
    crash_before_ack,
    entries,
    loan_records,
)

pytestmark = pytest.mark.timeout(90)


def stored(settings: Settings) -> dict[str, dict[str, Any]]:
    store = open_store(settings.database_url, migrate=False)
    try:
        with store.sessions() as session:
            page = queries.list_predictions(session=session, limit=100_000)
    finally:
        store.dispose()
    assert page.total == len(page.items)
    return {item["request_id"]: item for item in page.items}


def outputs(rds: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [fields for _, fields in entries(rds, keys.output)]


def pending(rds: redis.Redis, keys: Keys) -> int:
    return int(rds.xpending(keys.input, keys.group)["pending"])


def metric(running: Any, name: str, **labels: str) -> float:
    value = running.metrics.registry.get_sample_value(name, labels or None)
    return float(value or 0.0)


@pytest.mark.usefixtures("champion")
def test_events_are_predicted_logged_published_and_acked(
    broker: Broker, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    calls: list[int] = []

    def listener(bundle: ModelBundle, records: Sequence[Mapping[str, Any]], p: Predictions) -> None:
        calls.append(len(records))

    records = loan_records(120)
    rids = [f"rid-{i}" if i % 2 == 0 else None for i in range(120)]
    ids = broker.produce(records, request_ids=rids)
    running = make_consumer(listeners=[listener], source=broker.source("c1"))
    stats = running.consumer.run(max_events=120)

    assert (stats.events, stats.predicted, stats.dead_lettered) == (120, 120, 0)
    if broker.kind == "redis":
        assert stats.batches == 3
        assert calls == [50, 50, 20]  # one model call per batch, listeners see every call
    else:  # a Kafka poll returns what was fetched so far: batches of at most 50
        assert stats.batches == len(calls) and sum(calls) == 120 and max(calls) == 50
    expected = [rid or broker.request_id(eid) for rid, eid in zip(rids, ids, strict=True)]
    rows = stored(stream_settings)
    assert sorted(rows) == sorted(expected)
    first = rows[expected[0]]
    assert first["source"] == "stream" and first["variant"] == "champion"
    assert first["model_version"] == 1 and first["model_name"] == stream_settings.model_name
    assert set(first["features"]) == set(records[0])
    assert first["prediction"] in first["probabilities"]
    out = broker.outputs(expect=120)
    assert [o["request_id"] for o in out] == expected  # published in stream order
    assert [o["event_id"] for o in out] == ids
    assert {o["durable"] for o in out} == {"store"}
    assert out[0]["prediction"] == first["prediction"]
    assert json.loads(out[0]["probabilities"]) == pytest.approx(first["probabilities"])
    assert broker.unacked() == 0
    assert broker.dead() == []
    predicted = sum(
        s.value
        for m in running.metrics.registry.collect()
        if m.name == "driftline_predictions"
        for s in m.samples
        if s.name == "driftline_predictions_total"
    )
    assert predicted == 120
    assert metric(running, "driftline_model_batch_rows_count") == stats.batches
    assert metric(running, "driftline_prediction_latency_seconds_count", variant="champion") == 120
    assert metric(running, "driftline_stream_events_total", outcome="predicted") == 120
    assert metric(running, "driftline_model_version", alias="champion") == 1


@pytest.mark.usefixtures("champion")
def test_invalid_events_go_to_the_dead_letter_stream_and_are_acked(
    broker: Broker, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    good = loan_records(3)
    unknown = {**good[0], "shoe_size": 44}
    wrong_type = {**good[1], "age": "old"}
    events: list[dict[str, str]] = [
        encode_event(good[0], request_id="ok-0"),
        encode_event(unknown, request_id="bad-unknown"),
        encode_event(wrong_type),
        encode_event([1, 2, 3]),  # wrong length in schema order
        {"features": "{not json", "request_id": "bad-json"},
        {"request_id": "no-features"},
        {"features": '"a string"'},
        encode_event(good[1], request_id="x" * 129),
        encode_event(good[2], request_id="ok-2"),
    ]
    ids = [broker.add(e) for e in events]
    running = make_consumer(source=broker.source("c1"))
    stats = running.consumer.run(max_events=len(events))

    assert (stats.predicted, stats.dead_lettered) == (2, 7)
    assert sorted(stored(stream_settings)) == ["ok-0", "ok-2"]
    dead = broker.dead(expect=7)
    assert [d["event_id"] for d in dead] == ids[1:8]
    by_id = {d["event_id"]: d for d in dead}
    unknown_entry = by_id[ids[1]]
    assert unknown_entry["reason"] == "validation"
    assert unknown_entry["request_id"] == "bad-unknown"  # the original event travels along
    assert json.loads(unknown_entry["features"])["shoe_size"] == 44
    errors = json.loads(unknown_entry["errors"])
    assert errors[0]["loc"] == ["features", "shoe_size"]
    assert json.loads(by_id[ids[2]]["errors"])[0]["loc"] == ["features", "age"]
    assert json.loads(by_id[ids[3]]["errors"])[0]["type"] == "wrong_length"
    for i in (4, 5, 6, 7):
        assert by_id[ids[i]]["reason"] == "malformed"
    assert json.loads(by_id[ids[7]]["errors"])[0]["loc"] == ["request_id"]
    assert broker.unacked() == 0  # dead letters are acked: they would only fail again
    assert [o["request_id"] for o in broker.outputs(expect=2)] == ["ok-0", "ok-2"]
    assert (
        metric(running, "driftline_rejected_requests_total", endpoint="stream", reason="validation")
        == 3
    )
    assert (
        metric(running, "driftline_rejected_requests_total", endpoint="stream", reason="malformed")
        == 4
    )
    assert running.consumer.schema_violations >= 3


@pytest.mark.usefixtures("champion")
def test_a_row_the_model_fails_on_fails_alone(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    records = loan_records(10)
    produce(
        stream_settings.redis_url, keys.input, records, request_ids=[f"m-{i}" for i in range(10)]
    )
    running = make_consumer()
    assert running.consumer.check_for_new_model(reason="test")
    real = running.consumer.champion
    assert real is not None
    poisoned = dataclasses.replace(real)
    bad_age = records[3]["age"]

    def predict_records(rows: Sequence[Mapping[str, Any]]) -> Predictions:
        if any(r["age"] == bad_age for r in rows):
            raise RuntimeError("boom")
        return real.predict_records(rows)

    object.__setattr__(poisoned, "predict_records", predict_records)
    running.consumer.champion = poisoned
    stats = running.consumer.run(max_events=10)

    bad = {f"m-{i}" for i, r in enumerate(records) if r["age"] == bad_age}
    assert stats.dead_lettered == len(bad) and stats.predicted == 10 - len(bad)
    assert set(stored(stream_settings)) == {f"m-{i}" for i in range(10)} - bad
    dead = [fields for _, fields in entries(rds, keys.dead)]
    assert {d["request_id"] for d in dead} == bad
    assert {d["reason"] for d in dead} == {"model_error"}
    assert pending(rds, keys) == 0
    assert metric(running, "driftline_prediction_errors_total", reason="model") == len(bad)


class CrashBeforeAck(RedisStreamSource):
    def ack(self, ids: Sequence[str]) -> None:
        raise Crash


@pytest.mark.usefixtures("champion")
def test_a_restarted_consumer_resumes_its_own_pending_events_without_duplicate_rows(
    broker: Broker, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    ids = broker.produce(loan_records(30))
    source = crash_before_ack(broker.source("c1", claim_idle_ms=60_000))
    crashing = make_consumer("c1", source=source, batch_size=30)
    with pytest.raises(Crash):  # logged and published, then "killed" before the ack
        crashing.consumer.run(max_events=30)
    logged = len(stored(stream_settings))
    assert 0 < logged <= 30 and len(broker.outputs(expect=logged)) == logged
    if broker.kind == "redis":
        assert logged == 30  # one read takes all 30 (a Kafka poll takes what was fetched)
    assert broker.unacked() == 30
    crashing.source.close()  # gone without a commit (Kafka: its partitions go back)

    restarted = make_consumer(
        "c1", source=broker.source("c1", claim_idle_ms=60_000)
    )  # Redis: the same name resumes its pending entries without an idle wait
    stats = restarted.consumer.run(max_events=30)

    assert stats.claimed == 0 and stats.predicted == 30
    rows = stored(stream_settings)
    assert sorted(rows) == sorted(broker.request_id(i) for i in ids)  # still one row each
    out = broker.outputs(expect=30 + logged)
    assert len(out) == 30 + logged and {o["request_id"] for o in out} == set(rows)
    assert broker.unacked() == 0


@pytest.mark.usefixtures("champion")
def test_pending_events_of_a_dead_consumer_are_claimed_by_a_live_one(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    produce(
        stream_settings.redis_url,
        keys.input,
        loan_records(80),
        request_ids=[f"d-{i}" for i in range(80)],
    )
    dead = make_consumer("dead", source_cls=CrashBeforeAck)
    with pytest.raises(Crash):
        dead.consumer.run(max_events=80)  # dies holding its first batch of 50
    assert pending(rds, keys) == 50
    time.sleep(0.3)  # > stream_claim_idle_ms (200)

    live = make_consumer("live")
    stats = live.consumer.run(max_events=80)

    assert stats.claimed == 50 and stats.predicted == 80
    assert sorted(stored(stream_settings)) == sorted(f"d-{i}" for i in range(80))
    assert pending(rds, keys) == 0
    consumers = {c["name"]: c["pending"] for c in rds.xinfo_consumers(keys.input, keys.group)}
    assert consumers == {"dead": 0, "live": 0}
    assert metric(live, "driftline_stream_claimed_total") == 50


@pytest.mark.usefixtures("champion")
def test_entries_trimmed_while_pending_are_acked(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    ids = produce(stream_settings.redis_url, keys.input, loan_records(5))
    crashing = make_consumer("c1", source_cls=CrashBeforeAck)
    with pytest.raises(Crash):
        crashing.consumer.run(max_events=5)
    rds.xdel(keys.input, ids[0], ids[1])
    slow_claims = stream_settings.model_copy(update={"stream_claim_idle_ms": 60_000})
    stats = make_consumer("c1", settings=slow_claims).consumer.run(max_events=5)
    assert stats.events == 5 and stats.predicted == 3
    assert pending(rds, keys) == 0


@pytest.mark.usefixtures("champion")
def test_backpressure_never_more_than_one_batch_in_hand(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    in_hand: list[int] = []

    def listener(bundle: ModelBundle, records: Sequence[Mapping[str, Any]], p: Predictions) -> None:
        in_hand.append(pending(rds, keys))  # delivered to us and not acked yet

    produce(stream_settings.redis_url, keys.input, loan_records(600))
    running = make_consumer(listeners=[listener])
    running.consumer.run(max_events=600)
    assert len(in_hand) == 12 and max(in_hand) == 50  # one batch, never more
    info = {g["name"]: g for g in rds.xinfo_groups(keys.input)}[keys.group]
    assert info["pending"] == 0 and info["lag"] == 0


@pytest.mark.usefixtures("champion")
def test_stop_finishes_the_batch_in_hand(
    rds: redis.Redis, keys: Keys, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    produce(stream_settings.redis_url, keys.input, loan_records(200))
    holder: list[Any] = []

    def stop_now(bundle: ModelBundle, records: Sequence[Mapping[str, Any]], p: Predictions) -> None:
        holder[0].consumer.stop()  # as SIGTERM does, in the middle of a batch

    running = make_consumer(listeners=[stop_now])
    holder.append(running)
    stats = running.consumer.run()
    assert stats.events == 50 and len(stored(stream_settings)) == 50
    assert pending(rds, keys) == 0


def test_the_consumer_waits_for_a_champion_before_reading(
    rds: redis.Redis,
    keys: Keys,
    stream_settings: Settings,
    make_consumer: MakeConsumer,
    trained_bundle: ModelBundle,
) -> None:
    produce(stream_settings.redis_url, keys.input, loan_records(20))
    running = make_consumer()
    thread = threading.Thread(target=running.consumer.run, kwargs={"max_events": 20})
    thread.start()
    try:
        time.sleep(0.5)
        running.source.ensure_group()
        info = {g["name"]: g for g in rds.xinfo_groups(keys.input)}[keys.group]
        assert info["entries-read"] in (None, 0)  # nothing read while no model can serve
        store = open_store(stream_settings.database_url)
        Registry.from_settings(stream_settings, store).register(trained_bundle, actor="test")
        store.dispose()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        running.consumer.stop()
        thread.join(5)
    assert running.consumer.stats.predicted == 20


@pytest.mark.usefixtures("champion")
def test_an_alias_move_is_picked_up(
    rds: redis.Redis,
    keys: Keys,
    stream_settings: Settings,
    make_consumer: MakeConsumer,
    trained_bundle: ModelBundle,
) -> None:
    store = open_store(stream_settings.database_url)
    registry = Registry.from_settings(stream_settings, store)
    second = registry.register(trained_bundle, actor="test")
    assert registry.alias(CHAMPION) == 1 and second == 2
    running = make_consumer()
    produce(
        stream_settings.redis_url,
        keys.input,
        loan_records(10),
        request_ids=[f"v1-{i}" for i in range(10)],
    )
    running.consumer.run(max_events=10)
    registry.set_alias(CHAMPION, second, actor="test", reason="alias move test")
    store.dispose()
    time.sleep(stream_settings.reload_poll_seconds + 0.1)
    produce(
        stream_settings.redis_url,
        keys.input,
        loan_records(10),
        request_ids=[f"v2-{i}" for i in range(10)],
    )
    running.consumer.run(max_events=10)

    versions = {rid[:2]: row["model_version"] for rid, row in stored(stream_settings).items()}
    assert versions == {"v1": 1, "v2": 2}
    assert {o["model_version"] for o in outputs(rds, keys)} == {"1", "2"}
    assert metric(running, "driftline_model_reloads_total", result="ok") == 1
    assert metric(running, "driftline_model_version", alias="champion") == 2


@pytest.mark.usefixtures("champion")
def test_label_events_are_stored_and_bad_ones_dead_lettered(
    broker: Broker, stream_settings: Settings, make_consumer: MakeConsumer
) -> None:
    broker.produce(loan_records(3), request_ids=["l-0", "l-1", "l-2"])
    broker.add({"request_id": "l-0", "label": "1"})
    broker.add({"request_id": "l-1", "label": "0.0"})  # the class 0, as JSON 0.0 would be
    broker.add({"request_id": "l-9", "label": "yes"})  # before its prediction: kept too
    broker.add({"label": "1"})  # whose?
    running = make_consumer(source=broker.source("c1"))
    stats = running.consumer.run(max_events=7)

    assert (stats.predicted, stats.labels, stats.dead_lettered) == (3, 3, 1)
    store = open_store(stream_settings.database_url, migrate=False)
    try:
        with store.sessions() as session:
            page = queries.list_predictions(session=session, limit=100)
            missing = session.get(Label, "l-9")
    finally:
        store.dispose()
    assert {i["request_id"]: i["label"] for i in page.items} == {
        "l-0": "1",
        "l-1": "0",
        "l-2": None,
    }
    assert missing is not None and missing.label == "yes"
    [dead] = broker.dead(expect=1)
    assert dead["reason"] == "malformed"
    assert json.loads(dead["errors"])[0]["loc"] == ["request_id"]
    assert broker.unacked() == 0
    assert metric(running, "driftline_labels_total", durable="store") == 3
