"""The in-process scheduler: periodic jobs (concept drift, monitor, loop, alerts, retention)
run by exactly one worker among many, chosen by a lease in the store.

Every worker runs a :class:`Scheduler`; the one holding the lease runs the jobs, the others
wait. Jobs run side by side, each in its own thread, never two runs of one job at once: a slow
monitor run does not hold up the closed loop's next step.
If the leader dies, its lease expires and another worker takes over, so nothing depends
on one process. The same jobs are CLI commands (``driftline check``, ``driftline retrain``)
for an external scheduler (cron, a Kubernetes CronJob, Airflow).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from driftline import tracing
from driftline.store import Store, queries
from driftline.threads import limit_native_threads

__all__ = ["Job", "Scheduler"]

log = logging.getLogger(__name__)
LEASE = "scheduler"


@dataclass
class Job:
    """A blocking function run every ``interval`` seconds (in a thread) by the leader."""

    name: str
    interval: float
    run: Callable[[], Any]
    last_started: float = field(default=0.0)
    runs: int = 0
    failures: int = 0
    last_error: str | None = None


def _traced_run(job: Job, native_threads: int | None = None) -> Any:
    """One run of a job in a span ``driftline.job`` (what it does nests inside), with the
    worker's native thread budget applied to the job's thread."""
    if native_threads is not None:
        limit_native_threads(native_threads)
    with tracing.span("driftline.job", {"driftline.job": job.name}):
        return job.run()


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        worker_id: str,
        jobs: list[Job],
        lease_seconds: float = 30.0,
        tick: float = 0.5,
        on_failure: Callable[[Job, BaseException], None] | None = None,
        native_threads: int | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.jobs = {job.name: job for job in jobs}
        self.lease_seconds = lease_seconds
        self.tick = tick
        self.on_failure = on_failure
        #: Native (OpenMP/BLAS) threads of a job's thread; ``None`` leaves them alone.
        self.native_threads = native_threads
        self.is_leader = False
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def _renew(self) -> bool:
        with self.store.sessions.begin() as session:
            return queries.try_lease(
                LEASE, self.worker_id, seconds=self.lease_seconds, session=session
            )

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._lease_loop(), name="driftline-lease"),
            asyncio.create_task(self._job_loop(), name="driftline-jobs"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._running:  # a job in its thread cannot be interrupted: let it finish
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        if self.is_leader:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release)
            self.is_leader = False

    def _release(self) -> None:
        with self.store.sessions.begin() as session:
            queries.release_lease(LEASE, self.worker_id, session=session)

    def trigger(self, name: str) -> None:
        """Run job ``name`` at the next tick (on the leader)."""
        self.jobs[name].last_started = 0.0
        self._wake.set()

    async def _lease_loop(self) -> None:
        while True:
            try:
                leader = await asyncio.to_thread(self._renew)
            except Exception as exc:  # the store is down: nobody leads meanwhile
                log.warning("scheduler lease renewal failed: %s", exc)
                leader = False
            if leader != self.is_leader:
                log.info(
                    "worker %s %s the scheduler", self.worker_id, "leads" if leader else "left"
                )
            self.is_leader = leader
            await asyncio.sleep(self.lease_seconds / 3)

    async def _job_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick)
            self._wake.clear()
            if not self.is_leader:
                continue
            for job in list(self.jobs.values()):
                now = time.monotonic()
                if job.name in self._running or now - job.last_started < job.interval:
                    continue
                job.last_started = now
                task = asyncio.create_task(self._run(job), name=f"driftline-job-{job.name}")
                self._running[job.name] = task
                task.add_done_callback(functools.partial(self._finished, job.name))

    def _finished(self, name: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(name, None)

    async def _run(self, job: Job) -> None:
        try:
            await asyncio.to_thread(_traced_run, job, self.native_threads)
            job.runs += 1
            job.last_error = None
        except Exception as exc:
            job.failures += 1
            job.last_error = str(exc)
            log.warning("job %s failed: %s", job.name, exc)
            if self.on_failure is not None:
                self.on_failure(job, exc)
