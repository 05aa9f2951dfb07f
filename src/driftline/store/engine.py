"""Engines and schema migrations for SQLite and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from driftline.config import Settings

__all__ = [
    "StoreTimeouts",
    "create_store_engine",
    "current_revision",
    "head_revision",
    "is_reachable",
    "make_sessionmaker",
    "upgrade",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
#: An arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK = 0x64726674


@dataclass(frozen=True)
class StoreTimeouts:
    """Bounds on every store call, so a silent network fails like a refused one.

    Parameters
    ----------
    connect
        Seconds to open a connection (libpq ``connect_timeout``, whole seconds, at least 2;
        also the wait for a pooled connection).
    statement
        PostgreSQL ``statement_timeout`` in seconds (0: none).
    tcp_user
        Linux ``TCP_USER_TIMEOUT`` of libpq's socket: seconds sent data may stay
        unacknowledged before the kernel drops the connection. TCP keepalives probe an idle
        connection after half of it, every sixth of it, three times.
    busy
        SQLite busy timeout: seconds to wait for another process's write lock.
    """

    connect: float = 2.0
    statement: float = 30.0
    tcp_user: float = 10.0
    busy: float = 5.0

    @classmethod
    def for_flush_interval(
        cls,
        flush_interval: float,
        *,
        connect: float | None = None,
        statement: float | None = None,
        tcp_user: float | None = None,
        busy: float | None = None,
    ) -> StoreTimeouts:
        """The defaults for a writer flushing every ``flush_interval`` seconds (each one
        overridable): connect ``max(2, 2f)``, statement ``max(30, 30f)``, TCP user timeout
        ``max(10, 10f)``, SQLite busy ``max(5, 5f)``.

        >>> StoreTimeouts.for_flush_interval(1.0)
        StoreTimeouts(connect=2.0, statement=30.0, tcp_user=10.0, busy=5.0)
        >>> StoreTimeouts.for_flush_interval(2.0, statement=0)
        StoreTimeouts(connect=4.0, statement=0, tcp_user=20.0, busy=10.0)
        """
        f = flush_interval
        return cls(
            connect=max(2.0, 2 * f) if connect is None else connect,
            statement=max(30.0, 30 * f) if statement is None else statement,
            tcp_user=max(10.0, 10 * f) if tcp_user is None else tcp_user,
            busy=max(5.0, 5 * f) if busy is None else busy,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreTimeouts:
        return cls.for_flush_interval(
            settings.flush_interval_seconds,
            connect=settings.store_connect_timeout_seconds,
            statement=settings.store_statement_timeout_seconds,
            tcp_user=settings.store_tcp_user_timeout_seconds,
            busy=settings.store_busy_timeout_seconds,
        )

    def libpq_args(self) -> dict[str, Any]:
        """psycopg connect arguments (libpq parameters) that bound every call."""
        args: dict[str, Any] = {
            "connect_timeout": max(2, math.ceil(self.connect)),
            "keepalives": 1,
            "keepalives_idle": max(1, round(self.tcp_user / 2)),
            "keepalives_interval": max(1, round(self.tcp_user / 6)),
            "keepalives_count": 3,
            "tcp_user_timeout": max(1, round(self.tcp_user * 1000)),
        }
        if self.statement > 0:
            args["options"] = f"-c statement_timeout={round(self.statement * 1000)}"
        return args


def create_store_engine(url: str, *, timeouts: StoreTimeouts | None = None) -> Engine:
    """An engine tuned for driftline's write pattern, every call bounded by ``timeouts``.

    SQLite: WAL journal (readers never block the writer), a busy timeout so several worker
    processes can share the file, and one shared connection for in-memory databases.
    PostgreSQL: pre-ping, connect and statement timeouts, TCP keepalives and a TCP user
    timeout, so an outage or a silent network is noticed and the writer spills to disk
    instead of hanging.
    """
    bounds = timeouts or StoreTimeouts()
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": bounds.busy}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        busy_ms = max(0, round(bounds.busy * 1000))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = bounds.libpq_args()
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 5
        kwargs["max_overflow"] = 10
        kwargs["pool_timeout"] = bounds.connect
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the store's tables to ``revision`` (idempotent; safe from several processes)."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # A migration may rewrite a large table: not bounded by the statement timeout.
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def is_reachable(engine: Engine) -> bool:
    """Whether a trivial query succeeds now."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any driver error means "not now"
        return False
