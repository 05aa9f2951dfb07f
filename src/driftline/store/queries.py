"""Every query driftline runs. Routes, jobs and the CLI call these; none of them writes SQL.

Long on purpose (600+ lines): every query in one module, so nothing else writes SQL.

Functions take a keyword-only ``session``. Inserts of predictions and labels are idempotent
(keyed by ``request_id``) so replaying a spill file after a crash never duplicates rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from driftline.schema import label_text
from driftline.store.tables import (
    AlertRecord,
    AliasMove,
    AuditEvent,
    DeadLetter,
    Label,
    Lease,
    Prediction,
    Report,
    ShadowPrediction,
    StateEntry,
    WindowBucket,
)

__all__ = [
    "AlertRow",
    "AliasMoveRow",
    "AuditRow",
    "BucketRow",
    "DeadLetterRow",
    "PredictionPage",
    "ReportRow",
    "add_audit",
    "add_report",
    "alias_history",
    "buckets",
    "count_labeled",
    "count_predictions",
    "delete_buckets_before",
    "get_report",
    "get_state",
    "insert_dead_letters",
    "insert_predictions",
    "insert_shadow",
    "labeled_by_variant",
    "labeled_features_since",
    "labeled_predictions",
    "labels_since",
    "latest_report",
    "list_alerts",
    "list_audit",
    "list_dead_letters",
    "list_predictions",
    "list_reports",
    "mark_notified",
    "open_alert",
    "put_state",
    "record_alias_move",
    "release_lease",
    "resolve_alert",
    "shadow_labeled",
    "try_lease",
    "upsert_buckets",
    "upsert_labels",
]

PREDICTION_COLUMNS = (
    "request_id",
    "ts",
    "model_name",
    "model_version",
    "variant",
    "source",
    "features",
    "prediction",
    "probabilities",
    "confidence",
    "latency_ms",
)


def _dialect_insert(session: Session, table: Any) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {name!r}")


def insert_predictions(rows: Sequence[dict[str, Any]], *, session: Session) -> int:
    """Insert prediction records; rows whose ``request_id`` exists are skipped."""
    if not rows:
        return 0
    clean = [{k: r[k] for k in PREDICTION_COLUMNS} for r in rows]
    stmt = _dialect_insert(session, Prediction.__table__).on_conflict_do_nothing(
        index_elements=["request_id"]
    )
    session.execute(stmt, clean)
    return len(clean)


def upsert_labels(rows: Sequence[dict[str, Any]], *, session: Session) -> int:
    """Insert or update labels (``request_id``, ``label``, ``ts``); the newest ``ts`` wins."""
    if not rows:
        return 0
    clean = [
        {"request_id": str(r["request_id"]), "label": label_text(r["label"]), "ts": float(r["ts"])}
        for r in rows
    ]
    table = Label.__table__
    stmt = _dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["request_id"],
        set_={"label": stmt.excluded.label, "ts": stmt.excluded.ts},
        where=table.c.ts <= stmt.excluded.ts,
    )
    session.execute(stmt, clean)
    return len(clean)


@dataclass(frozen=True)
class PredictionPage:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _prediction_filters(
    *,
    start: float | None,
    end: float | None,
    version: int | None,
    has_label: bool | None,
) -> list[Any]:
    filters: list[Any] = []
    if start is not None:
        filters.append(Prediction.ts >= start)
    if end is not None:
        filters.append(Prediction.ts < end)
    if version is not None:
        filters.append(Prediction.model_version == version)
    if has_label is True:
        filters.append(Label.request_id.is_not(None))
    elif has_label is False:
        filters.append(Label.request_id.is_(None))
    return filters


def list_predictions(
    *,
    session: Session,
    start: float | None = None,
    end: float | None = None,
    version: int | None = None,
    has_label: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> PredictionPage:
    """Predictions (newest first) with their label when one arrived."""
    filters = _prediction_filters(start=start, end=end, version=version, has_label=has_label)
    joined = Prediction.__table__.outerjoin(
        Label.__table__, Label.request_id == Prediction.request_id
    )
    total = session.execute(select(func.count()).select_from(joined).where(*filters)).scalar_one()
    rows = session.execute(
        select(Prediction, Label.label, Label.ts.label("label_ts"))
        .select_from(joined)
        .where(*filters)
        .order_by(Prediction.ts.desc(), Prediction.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    items = [
        {
            **{c: getattr(p, c) for c in PREDICTION_COLUMNS},
            "label": label,
            "label_ts": label_ts,
        }
        for p, label, label_ts in rows
    ]
    return PredictionPage(items=items, total=int(total), limit=limit, offset=offset)


def labeled_predictions(
    *,
    session: Session,
    start: float | None = None,
    end: float | None = None,
    version: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Predictions that have a label, oldest first (for realized metrics and retraining)."""
    filters = _prediction_filters(start=start, end=end, version=version, has_label=None)
    stmt = (
        select(Prediction, Label.label)
        .join(Label, Label.request_id == Prediction.request_id)
        .where(*filters)
        .order_by(Prediction.ts, Prediction.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        {**{c: getattr(p, c) for c in PREDICTION_COLUMNS}, "label": label}
        for p, label in session.execute(stmt).all()
    ]


def count_labeled(*, session: Session, start: float | None = None) -> int:
    """How many predictions made since ``start`` have a label (the retrain trigger's count)."""
    filters = _prediction_filters(start=start, end=None, version=None, has_label=None)
    stmt = (
        select(func.count(Prediction.id))
        .join(Label, Label.request_id == Prediction.request_id)
        .where(*filters)
    )
    return int(session.execute(stmt).scalar_one())


def count_predictions(
    *, session: Session, start: float | None = None, version: int | None = None
) -> int:
    filters = _prediction_filters(start=start, end=None, version=version, has_label=None)
    return int(session.execute(select(func.count(Prediction.id)).where(*filters)).scalar_one())


# --- alias history ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasMoveRow:
    ts: float
    model_name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str


def record_alias_move(
    *,
    session: Session,
    model_name: str,
    alias: str,
    from_version: int | None,
    to_version: int | None,
    actor: str,
    reason: str,
    ts: float | None = None,
) -> None:
    session.add(
        AliasMove(
            ts=time.time() if ts is None else ts,
            model_name=model_name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
        )
    )


def alias_history(
    *, session: Session, model_name: str, alias: str | None = None, limit: int = 100
) -> list[AliasMoveRow]:
    """Alias moves, newest first."""
    stmt = select(AliasMove).where(AliasMove.model_name == model_name)
    if alias is not None:
        stmt = stmt.where(AliasMove.alias == alias)
    stmt = stmt.order_by(AliasMove.ts.desc(), AliasMove.id.desc()).limit(limit)
    return [
        AliasMoveRow(
            ts=m.ts,
            model_name=m.model_name,
            alias=m.alias,
            from_version=m.from_version,
            to_version=m.to_version,
            actor=m.actor,
            reason=m.reason,
        )
        for m in session.execute(stmt).scalars()
    ]


# --- audit log --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    id: int
    ts: float
    kind: str
    actor: str
    model_version: int | None
    message: str
    details: dict[str, Any]
    success: bool


def add_audit(
    *,
    session: Session,
    kind: str,
    message: str,
    actor: str = "driftline",
    model_version: int | None = None,
    details: dict[str, Any] | None = None,
    success: bool = True,
    ts: float | None = None,
) -> None:
    session.add(
        AuditEvent(
            ts=time.time() if ts is None else ts,
            kind=kind,
            actor=actor,
            model_version=model_version,
            message=message,
            details=details or {},
            success=success,
        )
    )


def list_audit(
    *,
    session: Session,
    kinds: Iterable[str] | None = None,
    since: float | None = None,
    limit: int = 200,
) -> list[AuditRow]:
    """Audit events, newest first."""
    stmt = select(AuditEvent)
    if kinds is not None:
        stmt = stmt.where(AuditEvent.kind.in_(list(kinds)))
    if since is not None:
        stmt = stmt.where(AuditEvent.ts >= since)
    stmt = stmt.order_by(AuditEvent.ts.desc(), AuditEvent.id.desc()).limit(limit)
    return [
        AuditRow(
            id=e.id,
            ts=e.ts,
            kind=e.kind,
            actor=e.actor,
            model_version=e.model_version,
            message=e.message,
            details=e.details,
            success=e.success,
        )
        for e in session.execute(stmt).scalars()
    ]


# --- window buckets -----------------------------------------------------------------------------


def upsert_buckets(rows: Sequence[dict[str, Any]], *, session: Session) -> int:
    """Write workers' bucket snapshots; a worker's newer snapshot replaces its older one."""
    if not rows:
        return 0
    table = WindowBucket.__table__
    stmt = _dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["worker_id", "bucket_start", "model_version", "variant"],
        set_={
            "n_rows": stmt.excluded.n_rows,
            "payload": stmt.excluded.payload,
            "updated_ts": stmt.excluded.updated_ts,
        },
        where=table.c.updated_ts <= stmt.excluded.updated_ts,
    )
    session.execute(
        stmt,
        [
            {
                "worker_id": r["worker_id"],
                "bucket_start": float(r["bucket_start"]),
                "model_version": int(r["model_version"]),
                "variant": r["variant"],
                "n_rows": int(r["n_rows"]),
                "payload": r["payload"],
                "updated_ts": float(r["updated_ts"]),
            }
            for r in rows
        ],
    )
    return len(rows)


@dataclass(frozen=True)
class BucketRow:
    worker_id: str
    bucket_start: float
    model_version: int
    variant: str
    n_rows: int
    payload: dict[str, Any]


def buckets(
    *,
    session: Session,
    start: float,
    end: float | None = None,
    version: int | None = None,
    variant: str | None = None,
) -> list[BucketRow]:
    """Buckets that started in ``[start, end)``, oldest first."""
    stmt = select(WindowBucket).where(WindowBucket.bucket_start >= start)
    if end is not None:
        stmt = stmt.where(WindowBucket.bucket_start < end)
    if version is not None:
        stmt = stmt.where(WindowBucket.model_version == version)
    if variant is not None:
        stmt = stmt.where(WindowBucket.variant == variant)
    stmt = stmt.order_by(WindowBucket.bucket_start, WindowBucket.id)
    return [
        BucketRow(
            worker_id=b.worker_id,
            bucket_start=b.bucket_start,
            model_version=b.model_version,
            variant=b.variant,
            n_rows=b.n_rows,
            payload=b.payload,
        )
        for b in session.execute(stmt).scalars()
    ]


def delete_buckets_before(ts: float, *, session: Session) -> int:
    result = session.execute(delete(WindowBucket).where(WindowBucket.bucket_start < ts))
    return int(getattr(result, "rowcount", 0) or 0)


# --- reports ------------------------------------------------------------------------------------


def add_report(
    *,
    session: Session,
    model_name: str,
    model_version: int,
    window_start: float,
    window_end: float,
    status: str,
    body: dict[str, Any],
    ts: float | None = None,
) -> int:
    report = Report(
        ts=time.time() if ts is None else ts,
        model_name=model_name,
        model_version=model_version,
        window_start=window_start,
        window_end=window_end,
        status=status,
        body=body,
    )
    session.add(report)
    session.flush()
    return int(report.id)


@dataclass(frozen=True)
class ReportRow:
    id: int
    ts: float
    model_name: str
    model_version: int
    window_start: float
    window_end: float
    status: str
    body: dict[str, Any]


def _report_row(r: Report) -> ReportRow:
    return ReportRow(
        id=r.id,
        ts=r.ts,
        model_name=r.model_name,
        model_version=r.model_version,
        window_start=r.window_start,
        window_end=r.window_end,
        status=r.status,
        body=r.body,
    )


def list_reports(
    *,
    session: Session,
    model_name: str | None = None,
    since: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ReportRow]:
    """Reports, newest first."""
    stmt = select(Report)
    if model_name is not None:
        stmt = stmt.where(Report.model_name == model_name)
    if since is not None:
        stmt = stmt.where(Report.ts >= since)
    stmt = stmt.order_by(Report.ts.desc(), Report.id.desc()).limit(limit).offset(offset)
    return [_report_row(r) for r in session.execute(stmt).scalars()]


def latest_report(*, session: Session, model_name: str | None = None) -> ReportRow | None:
    found = list_reports(session=session, model_name=model_name, limit=1)
    return found[0] if found else None


def get_report(report_id: int, *, session: Session) -> ReportRow | None:
    report = session.get(Report, report_id)
    return None if report is None else _report_row(report)


# --- shared state and leases ----------------------------------------------------------------------


def get_state(key: str, *, session: Session) -> dict[str, Any] | None:
    entry = session.get(StateEntry, key)
    return None if entry is None else dict(entry.value)


def put_state(key: str, value: dict[str, Any], *, session: Session) -> None:
    stmt = _dialect_insert(session, StateEntry.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"value": stmt.excluded.value, "updated_ts": stmt.excluded.updated_ts},
    )
    session.execute(stmt, [{"key": key, "value": value, "updated_ts": time.time()}])


def try_lease(
    name: str, holder: str, *, seconds: float, session: Session, now: float | None = None
) -> bool:
    """Take or renew the lease ``name`` for ``holder``; ``False`` while another holds it."""
    now = time.time() if now is None else now
    table = Lease.__table__
    stmt = _dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": stmt.excluded.holder, "expires_ts": stmt.excluded.expires_ts},
        where=(table.c.holder == stmt.excluded.holder) | (table.c.expires_ts < now),
    )
    session.execute(stmt, [{"name": name, "holder": holder, "expires_ts": now + seconds}])
    lease = session.get(Lease, name, populate_existing=True)
    return lease is not None and lease.holder == holder


def release_lease(name: str, holder: str, *, session: Session) -> None:
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


# --- shadow predictions -------------------------------------------------------------------------


SHADOW_COLUMNS = (
    "request_id",
    "ts",
    "model_version",
    "prediction",
    "probabilities",
    "confidence",
    "latency_ms",
    "agrees",
    "error",
)


def insert_shadow(rows: Sequence[dict[str, Any]], *, session: Session) -> int:
    if not rows:
        return 0
    stmt = _dialect_insert(session, ShadowPrediction.__table__).on_conflict_do_nothing(
        index_elements=["request_id", "model_version"]
    )
    session.execute(stmt, [{k: r.get(k) for k in SHADOW_COLUMNS} for r in rows])
    return len(rows)


def shadow_labeled(
    *, session: Session, version: int, start: float | None = None
) -> list[dict[str, Any]]:
    """Shadow answers of ``version`` that have a label: (prediction, label) pairs."""
    stmt = (
        select(ShadowPrediction.prediction, Label.label)
        .join(Label, Label.request_id == ShadowPrediction.request_id)
        .where(ShadowPrediction.model_version == version, ShadowPrediction.error.is_(None))
    )
    if start is not None:
        stmt = stmt.where(ShadowPrediction.ts >= start)
    return [{"prediction": p, "label": y} for p, y in session.execute(stmt).all()]


def labeled_by_variant(
    *, session: Session, version: int, variant: str | None = None, start: float | None = None
) -> list[dict[str, Any]]:
    """Served predictions of ``version`` (optionally one variant) that have a label."""
    stmt = (
        select(Prediction.prediction, Label.label)
        .join(Label, Label.request_id == Prediction.request_id)
        .where(Prediction.model_version == version)
    )
    if variant is not None:
        stmt = stmt.where(Prediction.variant == variant)
    if start is not None:
        stmt = stmt.where(Prediction.ts >= start)
    return [{"prediction": p, "label": y} for p, y in session.execute(stmt).all()]


def labels_since(
    *, session: Session, after_ts: float, after_id: str = "", limit: int = 5_000
) -> list[dict[str, Any]]:
    """Labelled predictions whose label arrived after the cursor ``(after_ts, after_id)``,
    in label order: the error stream of concept-drift detection."""
    stmt = (
        select(
            Label.ts,
            Label.request_id,
            Label.label,
            Prediction.prediction,
            Prediction.model_version,
            Prediction.variant,
            Prediction.ts,
        )
        .join(Prediction, Prediction.request_id == Label.request_id)
        .where((Label.ts > after_ts) | ((Label.ts == after_ts) & (Label.request_id > after_id)))
        .order_by(Label.ts, Label.request_id)
        .limit(limit)
    )
    return [
        {
            "label_ts": ts,
            "request_id": rid,
            "label": label,
            "prediction": prediction,
            "model_version": version,
            "variant": variant,
            "ts": predicted_ts,
        }
        for ts, rid, label, prediction, version, variant, predicted_ts in session.execute(
            stmt
        ).all()
    ]


def labeled_features_since(
    *,
    session: Session,
    after_ts: float,
    after_id: str = "",
    until_ts: float | None = None,
    limit: int = 1_000,
) -> list[dict[str, Any]]:
    """Labels that arrived after the cursor ``(after_ts, after_id)`` (and at or before
    ``until_ts``), with the features of their prediction, in label order: what an online
    model learns. Labels whose prediction is not stored are left out."""
    stmt = (
        select(Label.ts, Label.request_id, Label.label, Prediction.features)
        .join(Prediction, Prediction.request_id == Label.request_id)
        .where((Label.ts > after_ts) | ((Label.ts == after_ts) & (Label.request_id > after_id)))
        .order_by(Label.ts, Label.request_id)
        .limit(limit)
    )
    if until_ts is not None:
        stmt = stmt.where(Label.ts <= until_ts)
    return [
        {"label_ts": ts, "request_id": rid, "label": label, "features": features}
        for ts, rid, label, features in session.execute(stmt).all()
    ]


# --- alerts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    id: int
    fingerprint: str
    name: str
    severity: str
    status: str
    labels: dict[str, str]
    summary: str
    description: str
    value: float | None
    starts_at: float
    ends_at: float | None
    notified: list[str]


def _alert_row(a: AlertRecord) -> AlertRow:
    return AlertRow(
        id=a.id,
        fingerprint=a.fingerprint,
        name=a.name,
        severity=a.severity,
        status=a.status,
        labels=dict(a.labels),
        summary=a.summary,
        description=a.description,
        value=a.value,
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        notified=list(a.notified or []),
    )


def open_alert(
    *,
    session: Session,
    fingerprint: str,
    name: str,
    severity: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    value: float | None,
    starts_at: float,
) -> int:
    """Record a new firing episode (or return the one already open for the fingerprint)."""
    existing = session.execute(
        select(AlertRecord).where(
            AlertRecord.fingerprint == fingerprint, AlertRecord.status == "firing"
        )
    ).scalar_one_or_none()
    if existing is not None:
        existing.value = value
        existing.summary = summary
        return int(existing.id)
    record = AlertRecord(
        fingerprint=fingerprint,
        name=name,
        severity=severity,
        status="firing",
        labels=labels,
        summary=summary,
        description=description,
        value=value,
        starts_at=starts_at,
        ends_at=None,
        notified=[],
    )
    session.add(record)
    session.flush()
    return int(record.id)


def resolve_alert(*, session: Session, fingerprint: str, ends_at: float) -> None:
    for record in session.execute(
        select(AlertRecord).where(
            AlertRecord.fingerprint == fingerprint, AlertRecord.status == "firing"
        )
    ).scalars():
        record.status = "resolved"
        record.ends_at = ends_at


def mark_notified(*, session: Session, fingerprint: str, notifier: str) -> None:
    for record in session.execute(
        select(AlertRecord)
        .where(AlertRecord.fingerprint == fingerprint)
        .order_by(AlertRecord.id.desc())
        .limit(1)
    ).scalars():
        record.notified = [*record.notified, notifier]


def list_alerts(
    *, session: Session, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[AlertRow]:
    """Alerts, newest first."""
    stmt = select(AlertRecord)
    if status is not None:
        stmt = stmt.where(AlertRecord.status == status)
    stmt = stmt.order_by(AlertRecord.starts_at.desc(), AlertRecord.id.desc())
    return [_alert_row(a) for a in session.execute(stmt.limit(limit).offset(offset)).scalars()]


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    ts: float
    kind: str
    record: str
    error: str


def insert_dead_letters(rows: Sequence[dict[str, Any]], *, session: Session) -> int:
    """Keep refused records (``ts``, ``kind``, ``fingerprint``, ``record``, ``error``); a
    fingerprint already stored is skipped. Returns how many rows are new."""
    added = 0
    for r in rows:  # one at a time: dead letters are rare, and each says whether it is new
        stmt = (
            _dialect_insert(session, DeadLetter.__table__)
            .values(
                ts=float(r["ts"]),
                kind=str(r["kind"]),
                fingerprint=str(r["fingerprint"]),
                record=str(r["record"]),
                error=str(r["error"]),
            )
            .on_conflict_do_nothing(index_elements=["fingerprint"])
            .returning(DeadLetter.__table__.c.id)
        )
        added += session.execute(stmt).scalar_one_or_none() is not None
    return added


def list_dead_letters(
    *, session: Session, kind: str | None = None, limit: int = 100
) -> list[DeadLetterRow]:
    """Dead letters, oldest first."""
    stmt = select(DeadLetter).order_by(DeadLetter.ts, DeadLetter.id).limit(limit)
    if kind is not None:
        stmt = stmt.where(DeadLetter.kind == kind)
    return [
        DeadLetterRow(id=d.id, ts=d.ts, kind=d.kind, record=d.record, error=d.error)
        for d in session.scalars(stmt)
    ]
