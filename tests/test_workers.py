"""Several worker processes behind one port: shared store, aggregated metrics, and all of them
following an alias move within the poll interval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.store import open_store, queries
from tests.test_api import row
from tests.test_outage import _free_port, _wait_ready


@pytest.mark.slow
def test_two_workers_share_state_and_converge_on_alias_moves(
    settings: Settings, trained_bundle: ModelBundle
) -> None:
    store = open_store(settings.database_url)
    registry = Registry.from_settings(settings, store)
    registry.register(trained_bundle, actor="test")
    registry.register(trained_bundle, actor="test")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DRIFTLINE_HOME": str(settings.home),
        "DRIFTLINE_RELOAD_POLL_SECONDS": "0.5",
        "DRIFTLINE_FLUSH_INTERVAL_SECONDS": "0.2",
    }
    with open(settings.home / "serve.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftline", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(url, proc, timeout=90)
        with httpx.Client(base_url=url, timeout=5) as client:
            workers = set()
            for i in range(80):
                r = client.post("/predict", json={"features": row(i), "request_id": f"w{i}"})
                assert r.status_code == 200 and r.json()["model_version"] == 1
            for _ in range(100):  # fresh connections, so the kernel spreads them over workers
                workers.add(httpx.get(f"{url}/health", timeout=5).json()["worker"])
                if len(workers) == 2:
                    break
            registry.promote(2, actor="test", reason="converge")
            time.sleep(1.5)  # > poll interval, with margin
            seen: set[tuple[str, int]] = set()
            for i in range(60):  # fresh connections reach both workers
                answer = httpx.post(f"{url}/predict", json={"features": row(i)}, timeout=5)
                health = httpx.get(f"{url}/health", timeout=5).json()
                seen.add((health["worker"], answer.json()["model_version"]))
            assert {version for _, version in seen} == {2}
            assert {worker for worker, _ in seen} == workers
            text = client.get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        served = sum(
            s.value
            for s in families["driftline_http_requests"].samples
            if s.name.endswith("_total") and s.labels.get("endpoint") == "/predict"
        )
        assert served == 140  # 80 + 60  # both workers' counts, aggregated
        assert len(workers) == 2, "requests should have reached both workers"
        time.sleep(0.5)
        with store.sessions() as session:
            assert queries.count_predictions(session=session) == 140
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        store.dispose()
