"""A record the store refuses must not stop the others (issue 9, point 1): the writer and the
replay tell record errors from store errors, isolate the refused rows by bisection, write the
rest exactly once and dead-letter the refused ones with their error."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.service import create_app
from driftline.service.metrics import ServiceMetrics, WriterMetricsListener
from driftline.store import Store, StoreWriter, open_store, queries, record_handlers
from driftline.store.spill import SpillLog
from driftline.store.tables import DeadLetter, Label, Prediction
from driftline.store.writer import error_text, is_record_error
from tests.support.records import prediction
from tests.support.records import row as features_row

GOOD = 1_000


def poisons(backend: str) -> list[tuple[str, dict[str, Any], str]]:
    """(request id, prediction row, a word of the expected error) the store refuses.

    PostgreSQL refuses a NUL character in a text column or in JSON, and a request id longer
    than its column; SQLite (which stores NUL and ignores lengths) cannot encode a lone
    surrogate and stores NaN as NULL, which the NOT NULL column refuses.
    """
    now = time.time()
    if backend == "postgresql":
        return [
            ("poison-nul-rid\x00", prediction("poison-nul-rid\x00", now), "NUL"),
            (
                "poison-nul-cat",
                prediction("poison-nul-cat", now, features={"x": 1.0, "c": "a\x00b"}),
                "\\u0000",
            ),
            ("p" * 200, prediction("p" * 200, now), "too long"),
        ]
    return [
        ("poison-\ud800", prediction("poison-\ud800", now), "surrogates not allowed"),
        (
            "poison-nan",
            prediction("poison-nan", now, confidence=math.nan),
            "NOT NULL constraint failed",
        ),
    ]


def backend_of(store: Store) -> str:
    return store.engine.dialect.name


def make_writer(store: Store, spill: Path, **kwargs: Any) -> tuple[StoreWriter, ServiceMetrics]:
    metrics = ServiceMetrics()
    writer = StoreWriter(
        store.engine,
        store.sessions,
        record_handlers(),
        spill,
        flush_interval=0.2,
        retry_interval=0.1,
        listener=WriterMetricsListener(metrics),
        **kwargs,
    )
    return writer, metrics


def stored(store: Store) -> tuple[set[str], int]:
    with store.sessions() as session:
        ids = set(session.scalars(select(Prediction.request_id)))
        count = session.scalar(select(func.count()).select_from(Prediction))
    return ids, int(count or 0)


def dead_letters(store: Store) -> list[queries.DeadLetterRow]:
    with store.sessions() as session:
        return queries.list_dead_letters(session=session, limit=1000)


def dead_count(metrics: ServiceMetrics, kind: str = "prediction") -> float:
    value = metrics.registry.get_sample_value(
        "driftline_records_dead_lettered_total", {"kind": kind}
    )
    return float(value or 0.0)


def good_rows(prefix: str) -> list[dict[str, Any]]:
    now = time.time()
    return [prediction(f"{prefix}{i}", now) for i in range(GOOD)]


def check_outcome(
    store: Store, metrics: ServiceMetrics, good: set[str], bad: list[tuple[str, str]]
) -> None:
    ids, count = stored(store)
    assert ids == good and count == GOOD  # every good record, exactly once
    letters = dead_letters(store)
    assert sorted(json.loads(d.record)["request_id"] for d in letters) == sorted(
        rid for rid, _ in bad
    )
    by_id = {json.loads(d.record)["request_id"]: d for d in letters}
    for rid, word in bad:
        letter = by_id[rid]
        assert letter.kind == "prediction"
        assert word in letter.error, letter.error
        assert "\x00" not in letter.error and "\x00" not in letter.record
        assert letter.ts > 0
    assert dead_count(metrics) == len(bad)


def test_poison_rows_among_1000_are_dead_lettered_and_the_rest_stored_once(
    store: Store, tmp_path: Path
) -> None:
    bad = poisons(backend_of(store))
    writer, metrics = make_writer(store, tmp_path / "spill", batch_size=500)
    rows = good_rows("g")
    for n, (_, row, _) in enumerate(bad):  # spread over both batches
        rows.insert(137 + n * 401, row)
    writer.start()
    for row in rows:
        assert writer.offer("prediction", row)
    assert writer.flush(60)
    writer.stop()
    check_outcome(store, metrics, {f"g{i}" for i in range(GOOD)}, [(r, w) for r, _, w in bad])
    assert writer.store_up  # a refused record is not an outage
    assert writer.dead_lettered_total == len(bad)
    assert not list((tmp_path / "spill").glob("spill-*.jsonl"))


def test_a_spill_file_with_poison_rows_replays_after_a_restart(
    store: Store, tmp_path: Path
) -> None:
    """A killed process left a spill file holding poison rows: the next writer stores every
    good record once and dead-letters the poison ones instead of retrying them forever."""
    spill = tmp_path / "spill"
    bad = poisons(backend_of(store))
    rows = good_rows("s")
    for n, (_, row, _) in enumerate(bad):
        rows.insert(n * 333, row)
    left = SpillLog(spill)  # what a writer killed during an outage leaves behind
    left.append([("prediction", r) for r in rows])
    left.release()
    saved = next(spill.glob("spill-*.jsonl")).read_text()

    writer, metrics = make_writer(store, spill, batch_size=200)
    writer.start()  # the restarted process
    deadline = time.monotonic() + 60
    while list(spill.glob("spill-*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop()
    check_outcome(store, metrics, {f"s{i}" for i in range(GOOD)}, [(r, w) for r, _, w in bad])
    assert not list(spill.glob("spill-*.jsonl"))

    # A replay cut short and done again (the same file once more) changes nothing.
    (spill / "spill-again.jsonl").write_text(saved)
    again, again_metrics = make_writer(store, spill, batch_size=200)
    assert again.replay_now() == GOOD + len(bad)  # handled again: inserted as no-ops
    check_outcome(store, metrics, {f"s{i}" for i in range(GOOD)}, [(r, w) for r, _, w in bad])
    assert dead_count(again_metrics) == 0  # nothing new was dead-lettered


def test_a_refused_label_is_dead_lettered_and_the_others_acknowledged(
    store: Store, tmp_path: Path
) -> None:
    writer, metrics = make_writer(store, tmp_path / "spill")
    rid = "label-\x00" if backend_of(store) == "postgresql" else "label-\ud800"
    rows = [{"request_id": f"l{i}", "label": "1", "ts": 1.0} for i in range(20)]
    rows.insert(7, {"request_id": rid, "label": "1", "ts": 1.0})
    assert writer.write_now("label", rows) == "store"
    with store.sessions() as session:
        labels = set(session.scalars(select(Label.request_id)))
    assert labels == {f"l{i}" for i in range(20)}
    [letter] = dead_letters(store)
    assert letter.kind == "label" and json.loads(letter.record)["request_id"] == rid
    assert dead_count(metrics, "label") == 1


def test_the_dead_letter_file_takes_what_the_store_refuses_even_as_a_dead_letter(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with sqlite_store.engine.begin() as conn:  # a dead-letter table that refuses everything
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON dead_letters "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    writer, metrics = make_writer(sqlite_store, tmp_path / "spill")
    writer.start()
    writer.offer("prediction", prediction("ok", 1.0))
    writer.offer("prediction", prediction("bad", 1.0, confidence=math.nan))
    assert writer.flush(30)
    writer.stop()
    assert stored(sqlite_store)[0] == {"ok"}
    [line] = writer.dead_letter_file.read_text().splitlines()
    letter = json.loads(line)
    assert letter["kind"] == "prediction" and "NOT NULL" in letter["error"]
    assert json.loads(letter["record"])["request_id"] == "bad"
    assert "refused" in letter["store_error"]
    assert dead_count(metrics) == 1


class HangingStore:
    """Inserters that hang until released, as a commit on a silent network does."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hung = threading.Event()

    def predictions(self, rows: Sequence[dict[str, Any]], session: Session) -> None:
        if not self.release.is_set():
            self.hung.set()
            self.release.wait(60)
        queries.insert_predictions(rows, session=session)


def test_a_hanging_commit_spills_the_batch_and_replays_it_exactly_once(
    sqlite_store: Store, tmp_path: Path
) -> None:
    hanging = HangingStore()
    writer = StoreWriter(
        sqlite_store.engine,
        sqlite_store.sessions,
        {"prediction": hanging.predictions},
        tmp_path / "spill",
        flush_interval=0.2,
        retry_interval=0.1,
    )
    writer.start()
    for i in range(50):
        assert writer.offer("prediction", prediction(f"h{i}", 1.0))
    # The commit never answers, yet everything offered becomes durable: spilled.
    assert writer.flush(30)
    assert hanging.hung.is_set() and not writer.store_up
    assert writer.spilled_total >= 50 - writer.written_total
    for i in range(50, 80):
        assert writer.offer("prediction", prediction(f"h{i}", 1.0))
    assert writer.flush(30)
    assert stored(sqlite_store)[1] == 0
    hanging.release.set()  # the network heals: the hung commit lands, the spill replays
    deadline = time.monotonic() + 30
    while (list((tmp_path / "spill").glob("spill-*.jsonl")) or writer.spill.pending) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    writer.stop()
    ids, count = stored(sqlite_store)
    assert ids == {f"h{i}" for i in range(80)} and count == 80


def test_record_errors_are_told_from_store_errors(store: Store) -> None:
    bad = poisons(backend_of(store))[0][1]
    with pytest.raises(Exception) as refused, store.sessions.begin() as session:
        queries.insert_predictions([bad], session=session)
    assert is_record_error(refused.value)
    assert "\x00" not in error_text(refused.value)
    assert "[SQL" not in error_text(refused.value)  # the driver's message, not the batch
    broken = open_store(
        store.engine.url.set(database="driftline_no_such_db").render_as_string(False)
        if backend_of(store) == "postgresql"
        else f"sqlite:///{Path(str(store.engine.url.database)).parent}/no/such/dir/x.db",
        migrate=False,
    )
    with pytest.raises(Exception) as down, broken.sessions.begin() as session:
        session.execute(select(DeadLetter.id))
    broken.dispose()
    assert not is_record_error(down.value)
    assert not is_record_error(TimeoutError("silent network"))
    assert is_record_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"))


def test_ready_and_metrics_show_a_writer_that_does_not_drain(
    settings: Settings, trained_bundle: ModelBundle
) -> None:
    """The store answers a probe but refuses every insert (a broken table, a full disk): the
    records wait in the spill, /ready says so within the threshold, /metrics shows their age;
    once inserts work again everything lands exactly once and /ready recovers."""
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    settings = settings.model_copy(update={"writer_max_unwritten_age_seconds": 1.0})
    with TestClient(create_app(settings)) as client:
        writer = client.app.state.runtime.writer  # type: ignore[attr-defined]
        first = client.post("/predict", json={"features": features_row(0), "request_id": "r0"})
        assert first.status_code == 200
        assert writer.flush(10)
        assert client.get("/ready").status_code == 200
        working = writer.inserters["prediction"]

        def broken(rows: Sequence[dict[str, Any]], session: Session) -> None:
            raise OperationalError("INSERT INTO predictions", {}, Exception("disk I/O error"))

        writer.inserters["prediction"] = broken
        for i in range(1, 6):
            r = client.post("/predict", json={"features": features_row(i), "request_id": f"r{i}"})
            assert r.status_code == 200
        assert writer.flush(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = client.get("/ready")
            if any(x.startswith("store writer not draining") for x in ready.json()["reasons"]):
                break
            time.sleep(0.1)
        assert ready.status_code == 503, ready.json()
        assert ready.json()["writer_oldest_unwritten_seconds"] > 1.0
        scraped = client.get("/metrics").text
        [age] = [
            float(line.split()[1])
            for line in scraped.splitlines()
            if line.startswith("driftline_writer_oldest_unwritten_seconds ")
        ]
        assert age > 1.0

        writer.inserters["prediction"] = working
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.get("/ready").status_code != 200:
            time.sleep(0.1)
        assert client.get("/ready").status_code == 200
        assert writer.oldest_unwritten_age() == 0.0
    ids, count = stored(store)
    store.dispose()
    assert ids == {f"r{i}" for i in range(6)} and count == 6


def test_a_writer_that_can_neither_write_nor_spill_is_reported_stuck(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """The store refuses every insert and the spill folder cannot be created: the writer
    keeps the batch and retries, and says it does not drain instead of pretending."""
    (tmp_path / "file").write_text("")

    def down(rows: Sequence[dict[str, Any]], session: Session) -> None:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    writer = StoreWriter(
        sqlite_store.engine,
        sqlite_store.sessions,
        {"prediction": down},
        tmp_path / "file" / "spill",  # under a regular file: mkdir fails
        flush_interval=0.1,
        retry_interval=0.1,
    )
    writer.start()
    assert writer.problems(0.5) == []
    assert writer.offer("prediction", prediction("x", 1.0))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(writer.problems(0.5)) < 2:
        time.sleep(0.05)
    problems = writer.problems(0.5)
    assert any(p.startswith("store writer stuck") for p in problems), problems
    assert any(p.startswith("store writer not draining") for p in problems), problems
    assert writer.oldest_unwritten_age() > 0.5
    (tmp_path / "file").unlink()  # the disk is back: the batch lands in the spill log
    (tmp_path / "file").mkdir()
    writer.stop()
    assert writer.spilled_total == 1
    assert not any(p.startswith("store writer stuck") for p in writer.problems(0.5))


def test_the_cli_lists_the_dead_letters_with_their_errors(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """`driftline db dead-letters`: what the writer refused, with the store's error, as a table
    and as JSON (the record parsed back, NUL and all)."""
    from typer.testing import CliRunner

    from driftline.cli import app

    bad = poisons(backend_of(store))
    writer, _ = make_writer(store, tmp_path / "spill")
    writer.start()
    for row in [*good_rows("cli")[:20], *(r for _, r, _ in bad)]:
        assert writer.offer("prediction", row)
    assert writer.flush(60)
    writer.stop()
    home = tmp_path / "home"
    env = {"DRIFTLINE_DATABASE_URL": db_url, "COLUMNS": "200"}
    runner = CliRunner()
    result = runner.invoke(app, ["--home", str(home), "db", "dead-letters", "--json"], env=env)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert sorted(d["record"]["request_id"] for d in listed) == sorted(r for r, _, _ in bad)
    for d, (_, _, word) in zip(
        sorted(listed, key=lambda d: d["record"]["request_id"]),
        sorted(bad, key=lambda b: b[0]),
        strict=True,
    ):
        assert d["kind"] == "prediction" and word in d["error"]
    only_labels = ["--home", str(home), "db", "dead-letters", "--kind", "label", "--json"]
    assert json.loads(runner.invoke(app, only_labels, env=env).stdout) == []
    table = runner.invoke(app, ["--home", str(home), "db", "dead-letters"], env=env)
    assert table.exit_code == 0, table.output
    assert "Dead letters" in table.stdout
    assert all(d["error"].split()[0] in table.stdout for d in listed)


class SlowStore:
    """Inserters as a loaded store answers them: while ``slow``, each transaction takes
    ``delay`` seconds; with ``fail`` set it then fails (a statement timeout), so nothing of
    it lands."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.slow = True
        self.fail = False

    def predictions(self, rows: Sequence[dict[str, Any]], session: Session) -> None:
        if self.slow:
            time.sleep(self.delay)
            if self.fail:
                raise OperationalError("INSERT", {}, Exception("canceling statement"))
        queries.insert_predictions(rows, session=session)


def test_a_graceful_stop_moves_the_spill_into_a_slow_store(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Records spilled while the store was too slow for the serving deadline go into the
    store at a graceful stop if it answers at all, even slower than that deadline: no request
    waits any more. (The stop used the serving deadline and left the spill file behind.)"""
    slow = SlowStore(delay=0.6)  # over the 0.25 s commit deadline, under the 2 s sync one
    writer = StoreWriter(
        sqlite_store.engine,
        sqlite_store.sessions,
        {"prediction": slow.predictions},
        tmp_path / "spill",
        flush_interval=0.2,
        retry_interval=3600,  # no background replay: only the stop moves the spill
    )
    assert writer.commit_timeout < slow.delay < writer.sync_timeout
    writer.start()
    slow.fail = True
    for i in range(40):
        assert writer.offer("prediction", prediction(f"s{i}", 1.0))
    deadline = time.monotonic() + 30
    while writer.spilled_total < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.spilled_total == 40 and stored(sqlite_store)[1] == 0
    slow.fail = False  # still slow, but every transaction now lands
    writer.stop()
    ids, count = stored(sqlite_store)
    assert ids == {f"s{i}" for i in range(40)} and count == 40
    assert not list((tmp_path / "spill").glob("spill-*.jsonl"))
