from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from driftline.store import Store, StoreWriter, WriterListener, claim_spill_files, queries
from driftline.store.spill import SpillLog
from tests.support.records import prediction


class FlakyStore:
    """Inserters that fail while ``down`` is set, as a store outage looks to the writer."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.calls = 0

    def predictions(self, rows: Sequence[dict[str, Any]], session: Session) -> None:
        self.calls += 1
        if self.down.is_set():
            raise ConnectionError("store unreachable")
        queries.insert_predictions(rows, session=session)

    def labels(self, rows: Sequence[dict[str, Any]], session: Session) -> None:
        if self.down.is_set():
            raise ConnectionError("store unreachable")
        queries.upsert_labels(rows, session=session)


class Recorder(WriterListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def written(self, kind: str, n: int, lag_seconds: float) -> None:
        self.events.append(("written", n))

    def spilled(self, kind: str, n: int) -> None:
        self.events.append(("spilled", n))

    def replayed(self, kind: str, n: int) -> None:
        self.events.append(("replayed", n))

    def store_state(self, up: bool) -> None:
        self.events.append(("up", up))


def make_writer(
    store: Store, spill: Path, flaky: FlakyStore, **kwargs: Any
) -> tuple[StoreWriter, Recorder]:
    listener = Recorder()
    writer = StoreWriter(
        store.engine,
        store.sessions,
        {"prediction": flaky.predictions, "label": flaky.labels},
        spill,
        flush_interval=0.05,
        retry_interval=0.05,
        listener=listener,
        **kwargs,
    )
    return writer, listener


def stored_ids(store: Store) -> list[str]:
    with store.sessions() as session:
        page = queries.list_predictions(session=session, limit=1000)
    return sorted(i["request_id"] for i in page.items)


def test_batches_are_written_within_the_flush_interval(sqlite_store: Store, tmp_path: Path) -> None:
    flaky = FlakyStore()
    writer, listener = make_writer(sqlite_store, tmp_path / "spill", flaky, batch_size=50)
    writer.start()
    for i in range(120):
        assert writer.offer("prediction", prediction(f"p{i}", time.time()))
    assert writer.flush(5.0)
    writer.stop()
    assert len(stored_ids(sqlite_store)) == 120
    assert flaky.calls < 120  # batched, not row by row
    assert sum(n for e, n in listener.events if e == "written") == 120


def test_outage_spills_and_replays_without_loss_or_duplicates(
    sqlite_store: Store, tmp_path: Path
) -> None:
    flaky = FlakyStore()
    writer, listener = make_writer(sqlite_store, tmp_path / "spill", flaky)
    writer.start()
    for i in range(30):
        writer.offer("prediction", prediction(f"a{i}", time.time()))
    assert writer.flush()
    flaky.down.set()
    for i in range(40):
        writer.offer("prediction", prediction(f"b{i}", time.time()))
    assert writer.write_now("label", [{"request_id": "b1", "label": "1", "ts": time.time()}]) == (
        "spill"
    )
    assert writer.flush()
    assert not writer.store_up
    assert writer.spill_pending == 41
    assert len(stored_ids(sqlite_store)) == 30
    flaky.down.clear()
    deadline = time.monotonic() + 5
    while not writer.store_up and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.store_up
    writer.stop()
    ids = stored_ids(sqlite_store)
    assert len(ids) == len(set(ids)) == 70
    with sqlite_store.sessions() as session:
        assert queries.labeled_predictions(session=session)[0]["request_id"] == "b1"
    assert ("up", False) in listener.events and ("up", True) in listener.events
    assert sum(n for e, n in listener.events if e == "replayed") == 41
    assert not list((tmp_path / "spill").glob("spill-*.jsonl"))


def test_stop_drains_everything_queued(sqlite_store: Store, tmp_path: Path) -> None:
    flaky = FlakyStore()
    writer, _ = make_writer(sqlite_store, tmp_path / "spill", flaky, batch_size=7)
    for i in range(100):  # queued before the thread even starts
        writer.offer("prediction", prediction(f"s{i}", time.time()))
    writer.start()
    writer.stop()
    assert len(stored_ids(sqlite_store)) == 100


def test_full_queue_is_reported_not_dropped(sqlite_store: Store, tmp_path: Path) -> None:
    writer, _ = make_writer(sqlite_store, tmp_path / "spill", FlakyStore(), queue_size=3)
    assert all(writer.offer("prediction", prediction(f"q{i}", 0.0)) for i in range(3))
    assert writer.offer("prediction", prediction("q3", 0.0)) is False
    writer.start()
    writer.stop()
    assert stored_ids(sqlite_store) == ["q0", "q1", "q2"]


def test_orphaned_spill_files_are_claimed_and_torn_lines_skipped(
    sqlite_store: Store, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    good = [{"kind": "prediction", "row": prediction(f"o{i}", 1.0)} for i in range(3)]
    text = "".join(json.dumps(r) + "\n" for r in good) + '{"kind": "predic'
    (spill / "spill-deadbeef.jsonl").write_text(text)
    held = SpillLog(spill)  # a live writer's file must not be claimed
    held.append([("prediction", prediction("held", 1.0))])
    claimed = [p.name for p, _ in claim_spill_files(spill)]
    assert claimed == ["spill-deadbeef.jsonl"]
    writer, _ = make_writer(sqlite_store, spill, FlakyStore())
    assert writer.replay_now() == 3
    assert stored_ids(sqlite_store) == ["o0", "o1", "o2"]
    held.release()
    assert writer.replay_now() == 1
    assert "held" in stored_ids(sqlite_store)


def test_write_now_goes_to_the_store_when_it_is_up(sqlite_store: Store, tmp_path: Path) -> None:
    writer, _ = make_writer(sqlite_store, tmp_path / "spill", FlakyStore())
    assert writer.write_now("label", [{"request_id": "x", "label": 1, "ts": 1.0}]) == "store"


@pytest.mark.parametrize("bad", ["not json\n", '{"kind": "prediction"}\n'])
def test_unreadable_lines_are_skipped(tmp_path: Path, bad: str) -> None:
    (tmp_path / "spill-1.jsonl").write_text(
        bad + json.dumps({"kind": "label", "row": {"request_id": "a"}}) + "\n"
    )
    [(_, records)] = list(claim_spill_files(tmp_path))
    assert records == [("label", {"request_id": "a"})]


def test_flush_waits_for_the_records_queued_so_far_not_for_an_empty_queue(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Under steady traffic the queue is never empty; flush() must still return once the
    records offered before it are durable (the monitor flushes before every report: waiting
    for silence made a report take the whole flush timeout on a busy server)."""

    class SlowStore(FlakyStore):
        def predictions(self, rows: Sequence[dict[str, Any]], session: Session) -> None:
            time.sleep(0.02)  # each commit takes a while: new records keep arriving meanwhile
            super().predictions(rows, session)

    writer, _ = make_writer(sqlite_store, tmp_path / "spill", SlowStore())
    writer.start()
    first = [f"first-{i}" for i in range(100)]
    for rid in first:
        assert writer.offer("prediction", prediction(rid, 1.0))
    outcome: list[bool] = []
    flusher = threading.Thread(target=lambda: outcome.append(writer.flush(timeout=30.0)))
    flusher.start()
    sent = 0
    deadline = time.monotonic() + 30.0
    while flusher.is_alive() and time.monotonic() < deadline:
        writer.offer("prediction", prediction(f"later-{sent}", 2.0))  # steady traffic
        sent += 1
        time.sleep(0.001)
    flusher.join()
    assert outcome == [True]
    with sqlite_store.sessions() as session:
        page = queries.list_predictions(session=session, limit=5_000)
    stored = {i["request_id"] for i in page.items}
    assert set(first) <= stored  # everything offered before the flush is durable
    writer.stop()


class SlowStore(FlakyStore):
    """A store that needs ``delay`` seconds per insert; the first insert also fails after its
    wait (so nothing of the batch the writer gave up on commits behind its back)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def predictions(self, rows: Sequence[dict[str, Any]], session: Session) -> None:
        time.sleep(self.delay)
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("gave up on by the writer anyway")
        queries.insert_predictions(rows, session=session)


def test_flush_makes_records_a_slow_store_missed_visible(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """A commit slower than the flush interval spills its batch (durable, not yet queryable);
    flush() then moves it into the store with a caller's patience (``sync_timeout``), not the
    writer thread's ``commit_timeout``, so that a reader right after flush() sees every record
    on a loaded machine too (a monitor check once found none of a test's buckets)."""
    slow = SlowStore(delay=0.6)
    writer, listener = make_writer(sqlite_store, tmp_path / "spill", slow, sync_timeout=10.0)
    assert writer.commit_timeout < slow.delay < writer.sync_timeout
    writer.start()
    for i in range(30):
        assert writer.offer("prediction", prediction(f"slow{i}", time.time()))
    assert writer.flush(30.0)
    assert ("spilled", 30) in listener.events  # the batch did miss its commit deadline
    assert writer.spill_pending == 0
    assert stored_ids(sqlite_store) == sorted(f"slow{i}" for i in range(30))
    writer.stop()
