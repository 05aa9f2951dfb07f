"""Several worker processes behind one port: shared store, aggregated metrics, and all of them
following an alias move within the poll interval."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.store import open_store, queries
from tests.support.records import row
from tests.support.servers import free_port, wait_ready


@pytest.mark.slow
def test_two_workers_share_state_and_converge_on_alias_moves(
    settings: Settings, trained_bundle: ModelBundle
) -> None:
    store = open_store(settings.database_url)
    registry = Registry.from_settings(settings, store)
    registry.register(trained_bundle, actor="test")
    registry.register(trained_bundle, actor="test")
    port = free_port()
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
        wait_ready(url, proc)
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


def _slow_start_env(folder: Path, seconds: float) -> dict[str, str]:
    """An environment in which every process that multiprocessing spawns (each uvicorn worker)
    sleeps ``seconds`` before its first import (``site`` runs ``sitecustomize``), as importing
    does on a busy machine (17 s seen on two shared cores)."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        f"import sys, time\nif '--multiprocessing-fork' in sys.argv:\n    time.sleep({seconds})\n"
    )
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def _serve_workers(
    settings: Settings, env_extra: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "DRIFTLINE_HOME": str(settings.home), **env_extra}
    env.pop("DRIFTLINE_THREADS_PER_WORKER", None)  # the default budget (the suite sets 1)
    with open(settings.home / "serve.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftline", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
def test_workers_that_import_slowly_start_and_each_limits_its_native_threads(
    settings: Settings, trained_bundle: ModelBundle, tmp_path: Path
) -> None:
    """Issue 9: workers whose imports outlast uvicorn's 5 s health check were killed and
    restarted forever; and two workers on two cores each ran a full OpenMP/BLAS pool.

    uvicorn checks workers one after the other, so a worker may get up to ~5 s per worker
    before being killed: 12 s is beyond that for two workers, and well within the default."""
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    proc, url = _serve_workers(settings, _slow_start_env(tmp_path / "slow", 12))
    expected = max(1, joblib.cpu_count() // 2)
    try:
        wait_ready(url, proc, timeout=180)
        reports: dict[str, dict[str, Any]] = {}
        for _ in range(200):  # fresh connections, so the kernel spreads them over workers
            health = httpx.get(f"{url}/health", timeout=10).json()
            reports[health["worker"]] = health["native_threads"]
            if len(reports) == 2:
                break
    finally:
        _stop(proc)
    assert len(reports) == 2, "requests should have reached both workers"
    for threads in reports.values():
        assert threads["per_worker"] == expected
        pools = threads["model_thread"]
        assert "openmp" in {p["api"] for p in pools}  # scikit-learn's OpenMP runtime is loaded
        assert threads["model"] == 1  # the request path: one OpenMP thread
        assert {p["num_threads"] for p in pools if p["api"] == "openmp"} == {1}
        assert {p["num_threads"] for p in pools if p["api"] != "openmp"} <= {expected}
    log = (settings.home / "serve.log").read_text()
    assert "was killed" not in log and "exited with code" not in log


@pytest.mark.slow
def test_a_worker_that_cannot_start_in_time_is_logged_with_the_setting_to_raise(
    settings: Settings, trained_bundle: ModelBundle, tmp_path: Path
) -> None:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    env = {
        **_slow_start_env(tmp_path / "slow", 4),
        "DRIFTLINE_WORKER_HEALTHCHECK_TIMEOUT_SECONDS": "1",
    }
    proc, _url = _serve_workers(settings, env)
    log_file = settings.home / "serve.log"
    wanted = re.compile(
        r"ERROR driftline\.workers: worker process \[\d+\] did not answer the supervisor "
        r"within 1 s .* was killed; starting a new one\. "
        r".*DRIFTLINE_WORKER_HEALTHCHECK_TIMEOUT_SECONDS"
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not wanted.search(log_file.read_text()):
            assert proc.poll() is None, log_file.read_text()
            time.sleep(0.5)
    finally:
        _stop(proc)
    assert wanted.search(log_file.read_text()), log_file.read_text()
