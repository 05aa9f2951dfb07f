"""SQLAlchemy tables of the store. Migrations in ``store/migrations`` must match these
(a test compares them).

Times are UNIX seconds (UTC) as doubles: comparable, indexable and identical on SQLite and
PostgreSQL. Predictions and labels are separate tables joined by ``request_id``, so a label may
arrive before its prediction is written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AlertRecord",
    "AliasMove",
    "AuditEvent",
    "Base",
    "DeadLetter",
    "Label",
    "Lease",
    "Prediction",
    "Report",
    "ShadowPrediction",
    "StateEntry",
    "WindowBucket",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON on SQLite, JSONB on PostgreSQL.
JsonType = JSON().with_variant(JSONB(), "postgresql")
#: 64-bit keys on PostgreSQL; SQLite autoincrements only ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Prediction(Base):
    """One served prediction."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    ts: Mapped[float] = mapped_column(Double, index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[int] = mapped_column(Integer, index=True)
    variant: Mapped[str] = mapped_column(String(16), default="champion")
    source: Mapped[str] = mapped_column(String(16), default="api")
    features: Mapped[dict[str, Any]] = mapped_column(JsonType)
    prediction: Mapped[str] = mapped_column(String(256))
    probabilities: Mapped[dict[str, float]] = mapped_column(JsonType)
    confidence: Mapped[float] = mapped_column(Double)
    latency_ms: Mapped[float] = mapped_column(Double)


class Label(Base):
    """Ground truth for a request, possibly before the prediction is written."""

    __tablename__ = "labels"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(256))
    ts: Mapped[float] = mapped_column(Double, index=True)


class AliasMove(Base):
    """One move of a registry alias (MLflow keeps only the current target)."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Double, index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_alias_history_model_alias", "model_name", "alias"),)


class AuditEvent(Base):
    """A decision or action, with its reasons and numbers."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Double, index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    success: Mapped[bool] = mapped_column(Boolean, default=True)


class WindowBucket(Base):
    """What one worker saw of one model version in one time bucket (one minute by default):
    mergeable profiles, output profile, performance sketch, request/error/latency counts.

    A worker rewrites its own row while the bucket is open (a cumulative snapshot), so rows
    of different workers for the same bucket add up to the whole traffic.
    """

    __tablename__ = "window_buckets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    worker_id: Mapped[str] = mapped_column(String(128))
    bucket_start: Mapped[float] = mapped_column(Double, index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(16))
    n_rows: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    updated_ts: Mapped[float] = mapped_column(Double)

    __table_args__ = (UniqueConstraint("worker_id", "bucket_start", "model_version", "variant"),)


class Report(Base):
    """One monitor run's findings."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Double, index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[float] = mapped_column(Double)
    window_end: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)


class StateEntry(Base):
    """Small named state that must survive restarts and be shared by workers (detector
    checkpoints, cursors, cooldowns, the rollout, alert state)."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JsonType)
    updated_ts: Mapped[float] = mapped_column(Double)


class Lease(Base):
    """Who runs a singleton job (the monitor, the loop) among many workers, until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_ts: Mapped[float] = mapped_column(Double)


class ShadowPrediction(Base):
    """A challenger's answer to a copy of live traffic (never returned to the client)."""

    __tablename__ = "shadow_predictions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[float] = mapped_column(Double, index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    prediction: Mapped[str | None] = mapped_column(String(256), nullable=True)
    probabilities: Mapped[dict[str, float]] = mapped_column(JsonType)
    confidence: Mapped[float | None] = mapped_column(Double, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Double)
    agrees: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (UniqueConstraint("request_id", "model_version"),)


class AlertRecord(Base):
    """An alert of the built-in alerting: one row per firing episode."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    labels: Mapped[dict[str, str]] = mapped_column(JsonType)
    summary: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double, nullable=True)
    starts_at: Mapped[float] = mapped_column(Double, index=True)
    ends_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    notified: Mapped[list[str]] = mapped_column(JsonType, default=list)


class DeadLetter(Base):
    """A record the store refused (encoding, constraint, value), kept with the error instead of
    blocking the records behind it. ``record`` is the record as ASCII JSON text (it may hold
    what no other column can, such as a NUL character); ``fingerprint`` (SHA-256 of kind and
    record) makes a repeated dead-lettering of the same record, as in a replay cut short, a
    no-op."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Double, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    record: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
