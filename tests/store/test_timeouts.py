"""Every store call is bounded (issue 9, point 2): the settings reach libpq and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from driftline.config import Settings
from driftline.store import StoreTimeouts, open_store
from driftline.store.writer import is_record_error


def test_defaults_follow_the_flush_interval(tmp_path: Path) -> None:
    assert StoreTimeouts.from_settings(Settings(home=tmp_path)) == StoreTimeouts(
        connect=2.0, statement=30.0, tcp_user=10.0, busy=5.0
    )
    slow = Settings(home=tmp_path, flush_interval_seconds=3.0, store_busy_timeout_seconds=1.0)
    assert StoreTimeouts.from_settings(slow) == StoreTimeouts(
        connect=6.0, statement=90.0, tcp_user=30.0, busy=1.0
    )
    with pytest.raises(ValueError, match="writer_max_unwritten_age_seconds"):
        Settings(home=tmp_path, flush_interval_seconds=5, writer_max_unwritten_age_seconds=2)


@pytest.mark.postgres
def test_libpq_connections_carry_every_bound(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=pg_url,
        flush_interval_seconds=0.5,
        store_statement_timeout_seconds=1.0,
        store_tcp_user_timeout_seconds=6.0,
    )
    store = open_store(settings.database_url, timeouts=StoreTimeouts.from_settings(settings))
    try:
        with store.engine.connect() as conn:
            params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
            assert params["connect_timeout"] == "2"
            assert params["keepalives"] == "1"
            assert params["keepalives_idle"] == "3"
            assert params["keepalives_interval"] == "1"
            assert params["keepalives_count"] == "3"
            assert params["tcp_user_timeout"] == "6000"
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
            with pytest.raises(OperationalError) as cancelled:
                conn.execute(text("SELECT pg_sleep(30)"))
        assert "statement timeout" in str(cancelled.value)
        assert not is_record_error(cancelled.value)  # a store error: spill and retry
    finally:
        store.dispose()


def test_sqlite_waits_for_a_lock_no_longer_than_its_busy_timeout(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, store_busy_timeout_seconds=0.25)
    store = open_store(settings.database_url, timeouts=StoreTimeouts.from_settings(settings))
    other = open_store(settings.database_url, migrate=False)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 250
        with other.engine.connect() as holder:
            holder.execute(text("BEGIN IMMEDIATE"))  # another process holds the write lock
            with pytest.raises(OperationalError, match="locked"), store.engine.begin() as conn:
                conn.execute(text("INSERT INTO leases VALUES ('x', 'y', 1.0)"))
            holder.rollback()
    finally:
        store.dispose()
        other.dispose()
