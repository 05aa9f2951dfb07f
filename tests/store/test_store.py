from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from driftline.store import (
    Store,
    current_revision,
    head_revision,
    open_store,
    queries,
    upgrade,
)
from driftline.store.tables import Base
from tests.support.records import prediction


def test_migrations_match_the_tables(store: Store) -> None:
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    upgrade(store.engine)  # idempotent


def test_insert_is_idempotent_by_request_id(store: Store) -> None:
    now = time.time()
    with store.sessions.begin() as session:
        queries.insert_predictions([prediction("a", now), prediction("b", now)], session=session)
        queries.insert_predictions([prediction("a", now + 1, version=9)], session=session)
    with store.sessions() as session:
        page = queries.list_predictions(session=session)
    assert page.total == 2
    assert {i["request_id"]: i["model_version"] for i in page.items} == {"a": 1, "b": 1}
    assert page.items[0]["features"] == {"x": 1.0, "c": "a"}


def test_label_before_prediction_joins_later_and_newest_label_wins(store: Store) -> None:
    now = time.time()
    with store.sessions.begin() as session:
        queries.upsert_labels([{"request_id": "late", "label": 1.0, "ts": now}], session=session)
    with store.sessions.begin() as session:
        queries.insert_predictions([prediction("late", now)], session=session)
        queries.upsert_labels(
            [{"request_id": "late", "label": "0", "ts": now - 5}], session=session
        )
    with store.sessions() as session:
        [item] = queries.list_predictions(session=session).items
        assert item["label"] == "1"  # an older label never overwrites a newer one
        labeled = queries.labeled_predictions(session=session)
    assert [r["request_id"] for r in labeled] == ["late"]
    with store.sessions.begin() as session:
        queries.upsert_labels(
            [{"request_id": "late", "label": "0", "ts": now + 5}], session=session
        )
    with store.sessions() as session:
        assert queries.list_predictions(session=session).items[0]["label"] == "0"


def test_filters_and_pagination(store: Store) -> None:
    base = 1_000_000.0
    rows = [prediction(f"r{i}", base + i, version=1 + i % 2) for i in range(25)]
    with store.sessions.begin() as session:
        queries.insert_predictions(rows, session=session)
        queries.upsert_labels(
            [{"request_id": f"r{i}", "label": "1", "ts": base} for i in range(0, 25, 5)],
            session=session,
        )
    with store.sessions() as session:
        assert queries.list_predictions(session=session, version=2).total == 12
        assert queries.list_predictions(session=session, start=base + 20).total == 5
        assert queries.list_predictions(session=session, end=base + 3).total == 3
        assert queries.list_predictions(session=session, has_label=True).total == 5
        assert queries.list_predictions(session=session, has_label=False).total == 20
        first = queries.list_predictions(session=session, limit=10)
        second = queries.list_predictions(session=session, limit=10, offset=10)
        assert first.items[0]["request_id"] == "r24"  # newest first
        assert not {i["request_id"] for i in first.items} & {i["request_id"] for i in second.items}
        assert queries.count_predictions(session=session, start=base + 10) == 15


def test_alias_history_and_audit(store: Store) -> None:
    with store.sessions.begin() as session:
        queries.record_alias_move(
            session=session,
            model_name="m",
            alias="champion",
            from_version=None,
            to_version=1,
            actor="cli",
            reason="first",
            ts=1.0,
        )
        queries.record_alias_move(
            session=session,
            model_name="m",
            alias="champion",
            from_version=1,
            to_version=2,
            actor="api",
            reason="better",
            ts=2.0,
        )
        queries.add_audit(session=session, kind="gate", message="ok", details={"f1": 0.9})
    with store.sessions() as session:
        moves = queries.alias_history(session=session, model_name="m")
        assert [(m.from_version, m.to_version) for m in moves] == [(1, 2), (None, 1)]
        [event] = queries.list_audit(session=session, kinds=["gate"])
        assert event.details == {"f1": 0.9}


@pytest.mark.postgres
def test_postgres_url_forms_are_normalised(pg_url: str) -> None:
    from driftline.config import Settings

    plain = pg_url.replace("postgresql+psycopg://", "postgres://")
    assert Settings(database_url=plain).database_url == pg_url


@pytest.mark.postgres
def test_dispose_closes_a_connection_another_thread_was_still_using(pg_url: str) -> None:
    """Issue 9: a server stopping while a cancelled task's thread still ran a query left that
    psycopg connection open behind the discarded pool (a ResourceWarning at some later
    garbage collection, failing whichever test was running)."""
    store = open_store(pg_url)
    in_query = threading.Event()

    def query() -> Any:
        with store.engine.connect() as conn:
            in_query.set()
            conn.execute(text("SELECT pg_sleep(0.5)"))
            return conn.connection.dbapi_connection

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(query)
        assert in_query.wait(30)
        store.dispose()
        raw = future.result(timeout=30)
    assert raw is not None and raw.closed
