"""Queries behind monitoring and the loop, on SQLite and PostgreSQL."""

from __future__ import annotations

from driftline.store import Store, queries
from tests.support.records import prediction


def bucket(
    worker: str, start: float, n: int, updated: float, variant: str = "champion"
) -> dict[str, object]:
    return {
        "worker_id": worker,
        "bucket_start": start,
        "model_version": 1,
        "variant": variant,
        "n_rows": n,
        "payload": {"n": n},
        "updated_ts": updated,
    }


def test_buckets_are_per_worker_snapshots(store: Store) -> None:
    with store.sessions.begin() as session:
        queries.upsert_buckets(
            [bucket("a", 60.0, 5, 1.0), bucket("b", 60.0, 7, 1.0), bucket("a", 120.0, 1, 1.0)],
            session=session,
        )
        queries.upsert_buckets([bucket("a", 60.0, 9, 2.0)], session=session)  # newer snapshot
        queries.upsert_buckets([bucket("a", 60.0, 3, 1.5)], session=session)  # stale: ignored
        queries.upsert_buckets([bucket("a", 60.0, 4, 1.0, variant="canary")], session=session)
    with store.sessions() as session:
        rows = queries.buckets(session=session, start=0, variant="champion")
        assert [(r.worker_id, r.bucket_start, r.n_rows) for r in rows] == [
            ("a", 60.0, 9),
            ("b", 60.0, 7),
            ("a", 120.0, 1),
        ]
        assert len(queries.buckets(session=session, start=100)) == 1
        assert len(queries.buckets(session=session, start=0, end=100)) == 3
    with store.sessions.begin() as session:
        assert queries.delete_buckets_before(100.0, session=session) == 3


def test_reports_state_and_leases(store: Store) -> None:
    with store.sessions.begin() as session:
        first = queries.add_report(
            session=session,
            model_name="m",
            model_version=1,
            window_start=0,
            window_end=10,
            status="ok",
            body={"a": 1},
            ts=10,
        )
        queries.add_report(
            session=session,
            model_name="m",
            model_version=1,
            window_start=10,
            window_end=20,
            status="drift",
            body={"a": 2},
            ts=20,
        )
        queries.put_state("k", {"x": 1}, session=session)
        queries.put_state("k", {"x": 2}, session=session)
    with store.sessions() as session:
        latest = queries.latest_report(session=session, model_name="m")
        assert latest is not None and latest.status == "drift" and latest.body == {"a": 2}
        assert [r.ts for r in queries.list_reports(session=session)] == [20, 10]
        assert queries.get_report(first, session=session).body == {"a": 1}  # type: ignore[union-attr]
        assert queries.get_state("k", session=session) == {"x": 2}
        assert queries.get_state("missing", session=session) is None
    with store.sessions.begin() as session:
        assert queries.try_lease("monitor", "w1", seconds=30, session=session, now=100)
    with store.sessions.begin() as session:
        assert not queries.try_lease("monitor", "w2", seconds=30, session=session, now=110)
        assert queries.try_lease("monitor", "w1", seconds=30, session=session, now=120)
    with store.sessions.begin() as session:  # expired: another worker takes over
        assert queries.try_lease("monitor", "w2", seconds=30, session=session, now=200)
        queries.release_lease("monitor", "w2", session=session)
    with store.sessions.begin() as session:
        assert queries.try_lease("monitor", "w3", seconds=30, session=session, now=201)


def test_label_cursor_and_shadow_answers(store: Store) -> None:
    with store.sessions.begin() as session:
        queries.insert_predictions(
            [prediction(f"r{i}", float(i), prediction=str(i % 2)) for i in range(6)],
            session=session,
        )
        queries.upsert_labels(
            [{"request_id": f"r{i}", "label": "1", "ts": 100.0 + i // 2} for i in range(6)],
            session=session,
        )
        queries.insert_shadow(
            [
                {
                    "request_id": "r1",
                    "ts": 1.0,
                    "model_version": 2,
                    "prediction": "1",
                    "probabilities": {"1": 0.9},
                    "confidence": 0.9,
                    "latency_ms": 1.0,
                    "agrees": True,
                },
                {
                    "request_id": "r1",
                    "ts": 1.0,
                    "model_version": 2,
                    "prediction": "0",
                    "probabilities": {},
                    "confidence": 0.5,
                    "latency_ms": 1.0,
                    "agrees": False,
                },
            ],
            session=session,
        )
    with store.sessions() as session:
        first = queries.labels_since(session=session, after_ts=0, limit=3)
        assert [r["request_id"] for r in first] == ["r0", "r1", "r2"]
        last = first[-1]
        rest = queries.labels_since(
            session=session, after_ts=last["label_ts"], after_id=last["request_id"]
        )
        assert [r["request_id"] for r in rest] == ["r3", "r4", "r5"]
        assert queries.shadow_labeled(session=session, version=2) == [
            {"prediction": "1", "label": "1"}
        ]
        assert len(queries.labeled_by_variant(session=session, version=1, variant="champion")) == 6


def test_alert_episodes(store: Store) -> None:
    with store.sessions.begin() as session:
        a = queries.open_alert(
            session=session,
            fingerprint="f1",
            name="Drift",
            severity="critical",
            labels={"feature": "age"},
            summary="s",
            description="d",
            value=0.3,
            starts_at=10,
        )
        again = queries.open_alert(
            session=session,
            fingerprint="f1",
            name="Drift",
            severity="critical",
            labels={"feature": "age"},
            summary="s2",
            description="d",
            value=0.4,
            starts_at=20,
        )
        assert a == again
        queries.mark_notified(session=session, fingerprint="f1", notifier="slack")
    with store.sessions.begin() as session:
        queries.resolve_alert(session=session, fingerprint="f1", ends_at=30)
        queries.open_alert(
            session=session,
            fingerprint="f1",
            name="Drift",
            severity="critical",
            labels={"feature": "age"},
            summary="s3",
            description="d",
            value=0.5,
            starts_at=40,
        )
    with store.sessions() as session:
        alerts = queries.list_alerts(session=session)
        assert [(x.status, x.summary) for x in alerts] == [("firing", "s3"), ("resolved", "s2")]
        assert alerts[1].notified == ["slack"] and alerts[1].ends_at == 30
        assert len(queries.list_alerts(session=session, status="firing")) == 1
