"""Many workers, one truth: two API replicas sharing one PostgreSQL store and one registry,
each with its own scheduler. The rollout state lives in the store: both follow it within the
poll interval, route the same key to the same variant, and the one leader promotes on the
merged numbers of both."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
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
from tests.monitoring.conftest import plain

pytestmark = pytest.mark.postgres


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    explain: Callable[[], Any] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    detail = f": {explain()}" if explain is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


@pytest.fixture
def replicas(settings: Settings, pg_url: str) -> Iterator[list[TestClient]]:
    s = settings.model_copy(
        update={
            "database_url": pg_url,
            "reload_poll_seconds": 0.2,
            "loop_interval_seconds": 0.3,
            "concept_poll_seconds": 0.5,  # the leader lease lasts 3 s
            "monitor_interval_seconds": 3_600.0,
            "monitor_bucket_seconds": 1.0,
            "monitor_flush_seconds": 0.3,
            "canary_share": 0.5,
            "canary_min_samples": 300,  # more than either replica's canary traffic alone
            "watch_seconds": 1.0,
            "watch_min_samples": 100,
            **LATENCY_NEVER_DECIDES,
        }
    )
    store = open_store(s.database_url)
    registry = Registry.from_settings(s, store)
    frame = generate_loans(4_000, seed=3)
    # The challenger: the same kind of model on other rows, so the SLO holds (the guard's
    # breaches are tested in test_closed_loop.py).
    registry.register(train_model(frame, TARGET, kind="logreg", seed=0).bundle, actor="test")
    registry.register(
        train_model(frame, TARGET, kind="logreg", seed=1).bundle,
        actor="test",
        champion_if_first=False,
    )
    store.dispose()
    with ExitStack() as stack:
        yield [stack.enter_context(TestClient(create_app(s))) for _ in range(2)]


def runtime(client: TestClient) -> ServingRuntime:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def predict(client: TestClient, key: str, features: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/predict", json={"routing_key": key, "features": features})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_replicas_follow_one_rollout_and_one_leader_promotes(
    replicas: list[TestClient],
) -> None:
    a, b = replicas
    rt_a, rt_b = runtime(a), runtime(b)
    wait_for(
        lambda: sum(rt.scheduler.is_leader for rt in (rt_a, rt_b) if rt.scheduler) == 1,
        10,
        "exactly one leader",
    )
    start_rollout(rt_a.store, rt_a.registry, rt_a.settings, challenger=2, stage="canary")
    wait_for(
        lambda: rt_a.routing.canary_share == 0.5 and rt_b.routing.canary_share == 0.5,
        2.0,
        "both replicas to follow the canary within the poll interval",
    )
    rows = [
        {k: plain(v) for k, v in r.items() if k != TARGET}
        for r in generate_loans(800, seed=4).to_dict("records")
    ]
    # The same key lands on the same variant whichever replica answers.
    for i in range(40):
        assert (
            predict(a, f"user-{i}", rows[i])["variant"]
            == predict(b, f"user-{i}", rows[i])["variant"]
        )
    canary_answers = 0
    for i, features in enumerate(rows):
        client = a if i % 2 else b
        canary_answers += predict(client, f"flow-{i}", features)["variant"] == "canary"
    assert 300 <= canary_answers + 40 <= 500, read_rollout(rt_a.store, "driftline")  # share 0.5
    # Promotion needs >= 300 canary requests: only the merged buckets of both have them.
    wait_for(
        lambda: rt_a.registry.alias(CHAMPION) == 2,
        15,
        f"the leader to promote the canary ({canary_answers} canary answers)",
        lambda: read_rollout(rt_a.store, rt_a.settings.model_name),
    )
    wait_for(
        lambda: all(rt.champion is not None and rt.champion.version == 2 for rt in (rt_a, rt_b)),
        2.0,
        "both replicas to serve the new champion within the poll interval",
    )
    assert rt_a.registry.alias(CHALLENGER) is None
    state = read_rollout(rt_a.store, rt_a.settings.model_name)
    assert state is not None and state["stage"] in ("watch", "done")
    promoted = [h for h in state["history"] if h["stage"] == "watch"]
    assert len(promoted) == 1
    with rt_a.store.sessions() as session:
        promotions = queries.list_audit(session=session, kinds=["promotion"])
    assert len(promotions) == 1  # one leader acted, once
    counted = promotions[0].details["candidate"]["requests"]
    assert counted >= 300 and counted > max(canary_answers // 2 + 40, 0)
    # The watch completes on traffic from both replicas.
    for i, features in enumerate(rows[:300]):
        predict(a if i % 2 else b, f"after-{i}", features)
    wait_for(
        lambda: (read_rollout(rt_a.store, rt_a.settings.model_name) or {}).get("stage") == "done",
        10,
        "the watch to end",
    )
