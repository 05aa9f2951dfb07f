"""The store: SQLAlchemy tables on SQLite or PostgreSQL, migrations, queries, and the
background writer with its spill log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from driftline.store import queries
from driftline.store.engine import (
    StoreTimeouts,
    create_store_engine,
    current_revision,
    head_revision,
    is_reachable,
    make_sessionmaker,
    upgrade,
)
from driftline.store.spill import SpillLog, claim_spill_files
from driftline.store.writer import StoreWriter, WriterListener

log = logging.getLogger(__name__)

__all__ = [
    "SpillLog",
    "Store",
    "StoreTimeouts",
    "StoreWriter",
    "WriterListener",
    "claim_spill_files",
    "create_store_engine",
    "current_revision",
    "head_revision",
    "is_reachable",
    "make_sessionmaker",
    "open_store",
    "queries",
    "record_handlers",
    "upgrade",
]


@dataclass
class Store:
    """An engine and its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    def dispose(self, *, wait: float = 10.0) -> None:
        """Close every connection of the engine.

        A connection still checked out by another thread is not closed by SQLAlchemy's
        ``dispose`` (it would go back to the discarded pool and stay open until garbage
        collection), and a cancelled ``asyncio.to_thread`` keeps running: so this first waits,
        up to ``wait`` seconds, for such connections to come back.
        """
        checked_out = getattr(self.engine.pool, "checkedout", None)
        if callable(checked_out):
            deadline = time.monotonic() + wait
            while checked_out() > 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            if checked_out() > 0:
                log.warning(
                    "%d store connection(s) still in use after %.0f s; closing the others",
                    checked_out(),
                    wait,
                )
        self.engine.dispose()

    def audit(
        self,
        kind: str,
        message: str,
        *,
        actor: str = "driftline",
        version: int | None = None,
        details: dict[str, Any] | None = None,
        success: bool = True,
    ) -> None:
        """Write one audit-log event in its own transaction."""
        with self.sessions.begin() as session:
            queries.add_audit(
                session=session,
                kind=kind,
                actor=actor,
                model_version=version,
                message=message,
                details=details or {},
                success=success,
            )


def open_store(
    url: str, *, migrate: bool = True, timeouts: StoreTimeouts | None = None
) -> Store:
    """Connect to the store at ``url`` and (by default) bring its tables up to date.
    ``timeouts`` bound every call (default: :class:`StoreTimeouts` for a 1 s flush interval;
    ``StoreTimeouts.from_settings(settings)`` follows the settings)."""
    engine = create_store_engine(url, timeouts=timeouts)
    if migrate:
        upgrade(engine)
    return Store(engine=engine, sessions=make_sessionmaker(engine))


def record_handlers() -> dict[str, Callable[[Sequence[dict[str, Any]], Session], int]]:
    """How the writer stores each kind of record. Every writer knows every kind: a spill
    folder may hold another process's files, replayed by whoever finds the store up first."""
    return {
        "prediction": lambda rows, session: queries.insert_predictions(rows, session=session),
        "label": lambda rows, session: queries.upsert_labels(rows, session=session),
        "bucket": lambda rows, session: queries.upsert_buckets(rows, session=session),
        "shadow": lambda rows, session: queries.insert_shadow(rows, session=session),
    }
