"""Native thread pools sized per worker: the budget, the environment, and the threads that
apply it (model thread, background jobs, the whole worker through /health)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_info, threadpool_limits

from driftline.config import Settings
from driftline.errors import ConfigurationError
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.scheduler import Job, _traced_run
from driftline.service import create_app
from driftline.service.batcher import MicroBatcher
from driftline.service.supervisor import worker_environment
from driftline.store import open_store
from driftline.threads import (
    NATIVE_THREAD_VARIABLES,
    available_cores,
    limit_native_threads,
    native_thread_env,
    native_thread_pools,
    threads_per_worker,
)


@pytest.fixture(autouse=True)
def _restore_native_threads() -> Iterator[None]:
    """Limits set here (BLAS limits are process-wide) do not outlive the test."""
    before = threadpool_info()
    yield
    for info in before:
        threadpool_limits(limits={info["prefix"]: info["num_threads"]})


def _in_fresh_thread(fn: Any, *args: Any) -> Any:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)))
    thread.start()
    thread.join()
    return out[0]


def _openmp(pools: list[dict[str, Any]]) -> set[int]:
    """Thread counts of the OpenMP pools (at least one: scikit-learn loads its runtime)."""
    counts = {p["num_threads"] for p in pools if p["api"] == "openmp"}
    assert counts, pools
    return counts


def test_budget_is_cores_over_workers_at_least_one_unless_configured() -> None:
    cores = available_cores()
    assert threads_per_worker(1) == cores
    assert threads_per_worker(2) == max(1, cores // 2)
    assert threads_per_worker(cores * 4) == 1
    assert threads_per_worker(2, 3) == 3
    with pytest.raises(ConfigurationError, match="at least 1, got 0"):
        threads_per_worker(2, 0)
    assert native_thread_env(2) == {name: "2" for name in NATIVE_THREAD_VARIABLES}
    assert "OMP_NUM_THREADS" in NATIVE_THREAD_VARIABLES


def test_worker_environment_exports_the_resolved_budget() -> None:
    env = worker_environment(Settings(workers=2, threads_per_worker=None))
    expected = str(max(1, available_cores() // 2))
    assert env["DRIFTLINE_THREADS_PER_WORKER"] == expected
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == expected
    env = worker_environment(Settings(workers=2, threads_per_worker=3))
    assert env["DRIFTLINE_THREADS_PER_WORKER"] == env["MKL_NUM_THREADS"] == "3"
    # what a worker rebuilds from the environment is the resolved value, not cores again
    assert Settings(threads_per_worker=int(expected)).threads_per_worker == int(expected)


def test_model_thread_and_job_threads_apply_the_budget() -> None:
    async def model_thread_pools() -> list[dict[str, Any]]:
        batcher = MicroBatcher(native_threads=1)
        await batcher.start()
        try:
            return await batcher.native_thread_pools()
        finally:
            await batcher.stop()

    # OpenMP (scikit-learn's gradient boosting) is limited per thread, so these threads must
    # apply the budget themselves. BLAS pools are process-wide and sized by the environment
    # before workers spawn: tests/service/test_workers.py checks every pool in real worker
    # processes.
    pools = asyncio.run(model_thread_pools())
    assert _openmp(pools) == {1}, pools

    job = Job(name="probe", interval=1.0, run=native_thread_pools)
    pools = _in_fresh_thread(_traced_run, job, 1)
    assert _openmp(pools) == {1}, pools
    # OpenMP's limit belongs to the thread that set it: a thread that did not apply the
    # budget keeps the process default, which is why each of these threads applies it.
    (default,) = _openmp(_in_fresh_thread(native_thread_pools))
    _in_fresh_thread(limit_native_threads, default + 1)
    assert _openmp(_in_fresh_thread(native_thread_pools)) == {default}


def test_health_shows_the_budget_of_the_model_thread(
    settings: Settings, trained_bundle: ModelBundle
) -> None:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    configured = settings.model_copy(update={"threads_per_worker": 1, "workers": 1})
    with TestClient(create_app(configured)) as client:
        body = client.get("/health").json()
    assert body["native_threads"]["per_worker"] == 1
    assert _openmp(body["native_threads"]["model_thread"]) == {1}


@pytest.mark.parametrize(("model_threads", "expected"), [(None, 1), (2, 2)])
def test_the_model_thread_runs_one_openmp_thread_unless_configured(
    settings: Settings, trained_bundle: ModelBundle, model_threads: int | None, expected: int
) -> None:
    """A worker with a budget of 2 still calls the model on one OpenMP thread (a team of two
    on shared cores stalled gradient-boosting requests for ~1 s); DRIFTLINE_MODEL_THREADS
    changes that, and jobs keep the whole budget."""
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    configured = settings.model_copy(
        update={"threads_per_worker": 2, "workers": 1, "model_threads": model_threads}
    )
    with TestClient(create_app(configured)) as client:
        body = client.get("/health").json()
    threads = body["native_threads"]
    assert threads["per_worker"] == 2 and threads["model"] == expected
    assert _openmp(threads["model_thread"]) == {expected}
