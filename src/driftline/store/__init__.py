"""The store: SQLAlchemy tables on SQLite or PostgreSQL, migrations, queries, and the
background writer with its spill log."""

from __future__ import annotations

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

    def dispose(self) -> None:
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
