"""The API on Ray Serve: two replicas share one PostgreSQL store and the registry, follow a
promotion, survive a replica kill, and drain on a graceful stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.store import open_store, queries
from tests.support.records import row
from tests.support.servers import free_port

#: Upper bound of every wait below, one HTTP request included (a busy machine may be slow;
#: nothing asserts a latency: a request to a replica that is slow to get the CPU must not fail).
PATIENCE = 120.0


def wait_for(what: str, check: Callable[[], bool], timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def health(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/health", timeout=PATIENCE).json()
    return body


def replicas_seen(url: str, tries: int = 200) -> dict[str, int | None]:
    """Replica id -> served model version, from /health over fresh connections until the same
    two replicas have answered twice (the proxy spreads requests over replicas)."""
    seen: dict[str, int | None] = {}
    hits: dict[str, int] = {}
    for _ in range(tries):
        h = health(url)
        seen[h["worker"]] = h["model_version"]
        hits[h["worker"]] = hits.get(h["worker"], 0) + 1
        if len(seen) >= 2 and sum(1 for n in hits.values() if n >= 2) >= 2:
            break
    return seen


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(600)  # a hang guard: ~130 s with setup beside stress-ng --cpu 2
def test_two_replicas_share_the_store_follow_promotions_and_lose_nothing_acknowledged(
    ray_local: Any, pg_url: str, settings: Settings, trained_bundle: ModelBundle
) -> None:
    from driftline.on_ray.serve import (
        APP_NAME,
        DEPLOYMENT_NAME,
        RayServeOptions,
        build_application,
        serve_api,
    )

    serve = serve_api()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    shared = settings.model_copy(
        update={
            "database_url": pg_url,
            "host": "127.0.0.1",
            "port": port,
            "reload_poll_seconds": 0.5,
            "flush_interval_seconds": 0.5,
            "monitor_flush_seconds": 0.5,
            # No leader flushing buckets on its own schedule: only the replicas write theirs.
            "scheduler": False,
        }
    )
    store = open_store(pg_url)
    registry = Registry.from_settings(shared, store)
    registry.register(trained_bundle, actor="test")
    registry.register(trained_bundle, actor="test")
    acknowledged: list[str] = []

    def predict(n: int, tag: str) -> list[int]:
        versions = []
        for i in range(n):
            rid = f"{tag}-{i}"
            r = httpx.post(
                f"{url}/predict", json={"features": row(i), "request_id": rid}, timeout=PATIENCE
            )
            assert r.status_code == 200, r.text
            acknowledged.append(rid)
            versions.append(r.json()["model_version"])
        return versions

    def stored() -> int:
        with store.sessions() as session:
            return queries.count_predictions(session=session)

    def bucket_workers() -> set[str]:
        with store.sessions() as session:
            return {b.worker_id for b in queries.buckets(session=session, start=0.0)}

    def bucket_rows() -> int:
        with store.sessions() as session:
            return sum(b.n_rows for b in queries.buckets(session=session, start=0.0))

    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(
            build_application(shared, RayServeOptions(replicas=2, num_cpus=0.5)),
            name=APP_NAME,
            route_prefix="/",
        )
        wait_for("ready", lambda: httpx.get(f"{url}/ready", timeout=PATIENCE).status_code == 200)

        # 1. Both replicas serve, and their predictions and window buckets land in one store.
        first = replicas_seen(url)
        assert len(first) == 2, first
        assert set(first.values()) == {1}
        assert set(predict(60, "a")) == {1}
        wait_for("predictions stored", lambda: stored() == len(acknowledged))

        def both_bucketed() -> bool:
            if set(first) <= bucket_workers():
                return True
            predict(5, f"more{len(acknowledged)}")
            return False

        wait_for("buckets of both replicas", both_bucketed)

        # 2. A promotion reaches both replicas through the shared registry (alias poll).
        registry.promote(2, actor="test", reason="ray serve")
        wait_for("both replicas on version 2", lambda: set(replicas_seen(url).values()) == {2})
        assert set(predict(20, "b")) == {2}

        # 3. Kill one replica (no drain): Serve replaces it; what was stored before stays, and
        #    the new replica writes to the same store.
        wait_for("predictions stored before the kill", lambda: stored() == len(acknowledged))
        wait_for("buckets written before the kill", lambda: bucket_rows() == len(acknowledged))
        import ray

        replicas = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("SERVE_REPLICA::") and DEPLOYMENT_NAME in a["name"]
        ]
        assert len(replicas) == 2, replicas
        ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)

        def replaced() -> bool:
            status = serve.status().applications[APP_NAME].deployments
            running = [d.replica_states.get("RUNNING", 0) for d in status.values()]
            if running != [2]:
                return False
            seen = replicas_seen(url)
            return len(seen) == 2 and not set(seen) <= set(first)

        wait_for("a replacement replica", replaced)
        after_kill = replicas_seen(url)
        assert set(after_kill.values()) == {2}  # the new replica loaded the champion at start
        assert set(predict(30, "c")) == {2}
        wait_for("predictions stored after the kill", lambda: stored() == len(acknowledged))
        with store.sessions() as session:
            assert queries.count_predictions(session=session) == len(set(acknowledged))

        # 4. Graceful stops drain. From here on replicas write their buckets once an hour, so
        #    only a graceful stop's lifespan shutdown (which flushes everything) writes them:
        #    a redeploy replaces the replicas (the old ones drain), then the app is deleted.
        quiet = shared.model_copy(update={"monitor_flush_seconds": 3600.0})
        serve.run(
            build_application(quiet, RayServeOptions(replicas=2, num_cpus=0.5)),
            name=APP_NAME,
            route_prefix="/",
        )
        wait_for("the old replicas' last buckets", lambda: bucket_rows() == len(acknowledged))
        assert set(after_kill) <= bucket_workers()
        wait_for("two new replicas", lambda: not set(replicas_seen(url)) & set(after_kill))
        new = replicas_seen(url)
        assert len(new) == 2 and set(new.values()) == {2}, new
        predict(40, "d")
        assert not set(new) & bucket_workers()  # nothing written by the new replicas yet
        serve.delete(APP_NAME)
        assert stored() == len(acknowledged) == len(set(acknowledged))
        assert bucket_rows() == len(acknowledged)
        assert set(new) <= bucket_workers()
    finally:
        serve.shutdown()
        store.dispose()


@pytest.mark.slow
@pytest.mark.timeout(600)  # a hang guard: ~60 s beside stress-ng --cpu 2
def test_cli_serve_engine_ray_serves_and_drains_on_sigterm(
    ray_local: Any, settings: Settings, trained_bundle: ModelBundle
) -> None:
    """`driftline serve --engine ray` joins the running Ray (RAY_ADDRESS), serves, and on
    SIGTERM deletes the app gracefully: every acknowledged prediction is stored."""
    import os
    import signal
    import subprocess
    import sys

    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address,
        "DRIFTLINE_HOME": str(settings.home),
        "DRIFTLINE_FLUSH_INTERVAL_SECONDS": "0.5",
    }
    command = [sys.executable, "-m", "driftline", "serve", "--engine", "ray", "--port", str(port)]
    with open(settings.home / "serve-ray.log", "ab") as log:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:

        def ready() -> bool:
            assert proc.poll() is None, (settings.home / "serve-ray.log").read_text()
            try:
                return httpx.get(f"{url}/ready", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("driftline serve --engine ray", ready)
        for i in range(25):
            r = httpx.post(f"{url}/predict", json={"features": row(i)}, timeout=PATIENCE)
            assert r.status_code == 200, r.text
        assert health(url)["model_version"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(PATIENCE)
    assert code == 0, (settings.home / "serve-ray.log").read_text()
    with store.sessions() as session:
        assert queries.count_predictions(session=session) == 25
    store.dispose()


def test_replica_options_are_checked_and_become_serve_options() -> None:
    from driftline.errors import ConfigurationError
    from driftline.on_ray.serve import DEPLOYMENT_NAME, RayServeOptions

    fixed = RayServeOptions(replicas=3, num_cpus=0.5).deployment_options()
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["name"] == DEPLOYMENT_NAME
    assert fixed["ray_actor_options"] == {"num_cpus": 0.5}
    assert fixed["graceful_shutdown_timeout_s"] == 30.0
    scaled = RayServeOptions(min_replicas=0, max_replicas=4, target_ongoing_requests=2)
    assert scaled.deployment_options()["autoscaling_config"] == {
        "min_replicas": 0,
        "max_replicas": 4,
        "target_ongoing_requests": 2,
    }
    assert "num_replicas" not in scaled.deployment_options()
    for bad, message in (
        ({"replicas": 0}, "replicas must be >= 1, got 0"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas <= max_replicas, got 3 and 2"),
        ({"min_replicas": 1}, "min_replicas needs max_replicas"),
        ({"target_ongoing_requests": 0}, "target_ongoing_requests must be > 0"),
        ({"max_ongoing_requests": 0}, "max_ongoing_requests must be >= 1"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            RayServeOptions(**bad)  # type: ignore[arg-type]
