"""The closed loop end to end on a seeded stream, through the real app, on SQLite and on
PostgreSQL: drift → retrain → gate → shadow → canary → promotion → watch; and a bad
challenger withdrawn by the SLO guard, and a bad champion rolled back after promotion.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from driftline.config import Settings
from driftline.data import TARGET, generate_loans
from driftline.loop.controller import read_rollout, start_rollout
from driftline.registry import CHALLENGER, CHAMPION, Registry
from driftline.service import create_app
from driftline.service.runtime import ServingRuntime
from driftline.store import open_store, queries
from driftline.training import train_model
from tests.conftest import LATENCY_NEVER_DECIDES
from tests.loop.traffic import bad_model, runtime, segment_drift, send, settle
from tests.monitoring.conftest import plain


def follow(client: TestClient) -> None:
    """What every worker's poll does: follow aliases and the rollout state."""
    rt = runtime(client)
    client.portal.call(rt.check_for_new_model)  # type: ignore[union-attr]
    client.portal.call(rt.refresh_rollout)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def champion_bundle() -> Any:
    return train_model(generate_loans(12_000, seed=1), TARGET, kind="hgb", seed=0).bundle


def loop_settings(settings: Settings, db_url: str) -> Settings:
    return settings.model_copy(
        update={
            "database_url": db_url,
            "scheduler": False,  # the test plays the leader, one step at a time
            "retrain_min_labels": 1_000,
            "shadow_min_samples": 300,
            "canary_share": 0.3,
            "canary_min_samples": 150,
            "watch_seconds": 0.5,
            "watch_min_samples": 200,
            "monitor_bucket_seconds": 1.0,
            **LATENCY_NEVER_DECIDES,  # accuracy is judged here, not this machine's load
        }
    )


@pytest.fixture
def served(settings: Settings, db_url: str, champion_bundle: Any) -> Iterator[TestClient]:
    s = loop_settings(settings, db_url)
    store = open_store(s.database_url)
    Registry.from_settings(s, store).register(champion_bundle, actor="test")
    store.dispose()
    with TestClient(create_app(s)) as client:
        yield client


def gate_reason(rt: ServingRuntime) -> str:
    with rt.store.sessions() as session:
        gates = queries.list_audit(session=session, kinds=["gate"], limit=1)
    return gates[0].message if gates else "no gate decision"


def audit_kinds(rt: ServingRuntime) -> list[str]:
    with rt.store.sessions() as session:
        return [e.kind for e in queries.list_audit(session=session, limit=500)]


def test_drift_to_promotion_through_shadow_and_canary(served: TestClient) -> None:
    rt = runtime(served)
    send(served, generate_loans(1_500, seed=2), "calm")
    # Drift: reported by the monitor, then the loop retrains, gates, starts the rollout.
    send(served, segment_drift(3_000, seed=3), "drift")
    settle(rt)
    report = rt.jobs.monitor()
    assert report is not None and report["data_drift"]["severity"] == "critical"
    outcome = rt.jobs.loop()
    assert outcome is not None and outcome["promote"] is True, gate_reason(rt)
    challenger = outcome["retrain"]
    assert rt.registry.alias(CHALLENGER) == challenger
    with rt.store.sessions() as session:
        gate = queries.list_audit(session=session, kinds=["gate"], limit=5)[0]
    gate_metrics = gate.details["metrics"]
    assert gate_metrics["challenger"]["f1_macro"] > gate_metrics["champion"]["f1_macro"]
    assert gate.details["data"]["drift_rows"] >= 1_000
    assert gate.details["data"]["base_rows"] > 0 and len(gate.details["data"]["data_hash"]) == 16
    # The snapshot of the training data is logged with the challenger's MLflow run.
    mv = rt.registry.client.get_model_version(rt.settings.model_name, str(challenger))
    artifacts = [a.path for a in rt.registry.client.list_artifacts(mv.run_id, "training-data")]
    assert artifacts and artifacts[0].endswith(".parquet")
    assert mv.tags["driftline.data_hash"] == gate.details["data"]["data_hash"]

    # Shadow: answers still come from the champion; the challenger's copies are logged.
    follow(served)
    assert rt.routing.rollout is not None and rt.routing.rollout["stage"] == "shadow"
    answers = send(served, segment_drift(400, seed=4), "shadow")
    assert {a["variant"] for a in answers} == {"champion"}
    assert {a["model_version"] for a in answers} == {1}
    settle(rt)
    with rt.store.sessions() as session:
        shadowed = queries.shadow_labeled(session=session, version=challenger)
    assert len(shadowed) == 400
    step = rt.jobs.loop()
    assert step is not None and step["rollout"]["stage"] == "canary", step

    # Canary: a sticky share of keys is answered by the challenger.
    follow(served)
    answers = send(served, segment_drift(800, seed=5), "canary")
    canary = [a for a in answers if a["variant"] == "canary"]
    assert 0.2 < len(canary) / len(answers) < 0.4
    assert {a["model_version"] for a in canary} == {challenger}
    key_answers = [
        served.post(
            "/predict",
            json={
                "routing_key": "customer-42",
                "features": {
                    k: plain(v)
                    for k, v in generate_loans(1, seed=9 + i).iloc[0].items()
                    if k != TARGET
                },
            },
        ).json()["variant"]
        for i in range(5)
    ]
    assert len(set(key_answers)) == 1  # sticky per routing key
    settle(rt)
    step = rt.jobs.loop()
    assert step is not None and step["rollout"]["stage"] == "watch", step
    assert rt.registry.alias(CHAMPION) == challenger
    assert rt.registry.alias(CHALLENGER) is None

    # Watch: the new champion serves; the SLO holds; the rollout completes.
    follow(served)
    assert rt.champion is not None and rt.champion.version == challenger
    send(served, segment_drift(400, seed=6), "watch")
    settle(rt)
    time.sleep(0.6)
    step = rt.jobs.loop()
    assert step is not None and step["rollout"]["stage"] == "done", step
    kinds = audit_kinds(rt)
    for kind in ("retrain_triggered", "gate", "rollout", "promotion"):
        assert kind in kinds
    history = [h["stage"] for h in read_rollout(rt.store, rt.settings.model_name)["history"]]
    assert history == ["shadow", "canary", "watch", "done"]
    # The cooldown is persisted: the next pass does not retrain again.
    assert rt.jobs.loop() is None


def test_bad_canary_is_withdrawn_and_bad_champion_rolled_back(served: TestClient) -> None:
    rt = runtime(served)
    registry = rt.registry
    # A bad challenger forced into a canary: the SLO guard withdraws it on realized accuracy.
    bad = registry.register(bad_model(5), actor="test", champion_if_first=False)
    start_rollout(rt.store, registry, rt.settings, challenger=bad, stage="canary")
    follow(served)
    send(served, generate_loans(1_200, seed=7), "bad-canary")
    settle(rt)
    step = rt.jobs.loop()
    assert step is not None and step["rollout"]["stage"] == "aborted", step["rollout"][
        "last_verdict"
    ]
    reasons = read_rollout(rt.store, rt.settings.model_name)["history"][-1]["reasons"]
    assert "realized accuracy" in reasons[0]
    assert registry.alias(CHALLENGER) is None and registry.alias(CHAMPION) == 1

    # A bad model that got promoted (by hand): while watched, the guard rolls it back.
    worse = registry.register(bad_model(6), actor="test", champion_if_first=False)
    state = start_rollout(rt.store, registry, rt.settings, challenger=worse, stage="canary")
    registry.promote(worse, actor="test", reason="forced for the test")
    state.update(
        stage="watch",
        stage_started_ts=time.time(),
        baseline={
            "requests": 1_000,
            "errors": 0,
            "p95_latency_ms": 5.0,
            "labeled": 1_000,
            "accuracy": 0.78,
        },
    )
    with rt.store.sessions.begin() as session:
        queries.put_state(f"rollout:{rt.settings.model_name}", state, session=session)
    follow(served)
    assert rt.champion is not None and rt.champion.version == worse
    send(served, generate_loans(600, seed=8), "bad-champion")
    settle(rt)
    step = rt.jobs.loop()
    assert step is not None and step["rollout"]["stage"] == "rolled_back", step
    assert registry.alias(CHAMPION) == 1
    follow(served)
    assert rt.champion is not None and rt.champion.version == 1  # within one poll
    kinds = audit_kinds(rt)
    assert "rollback" in kinds
    metrics = served.get("/metrics").text
    assert 'driftline_rollbacks_total{actor="slo_guard"} 1.0' in metrics
    alerts = served.get("/alerts").json()["items"]
    assert any(a["name"] == "DriftlineRollback" for a in alerts)
