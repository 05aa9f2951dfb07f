"""Several worker processes behind one port: uvicorn's supervisor, plus what a busy machine needs.

* **Native threads per worker.** Before the workers are spawned, the environment gives each one
  ``cores ÷ workers`` OpenMP/BLAS threads (or ``DRIFTLINE_THREADS_PER_WORKER``), so N workers
  never run N full-size pools on the same cores (see :mod:`driftline.threads`).
* **A start-up budget that fits slow imports.** uvicorn kills a worker that does not answer its
  health check in time, and a worker cannot answer before its imports are done (17 s on a busy
  two-core machine, against uvicorn's default of 5 s): the setting
  ``DRIFTLINE_WORKER_HEALTHCHECK_TIMEOUT_SECONDS`` (default 60) is passed as uvicorn's
  ``timeout_worker_healthcheck``.
* **A killed or dead worker is logged** as an error naming the process, its exit code and the
  setting to raise, instead of uvicorn's info line that ``driftline serve`` does not show.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from socket import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from driftline.config import Settings
from driftline.threads import native_thread_env, threads_per_worker

__all__ = ["APP_FACTORY", "WorkerSupervisor", "run_workers", "worker_environment"]

log = logging.getLogger("driftline.workers")

#: What each worker process runs (``uvicorn --factory``).
APP_FACTORY = "driftline.service.app:create_app_from_env"


def worker_environment(settings: Settings) -> dict[str, str]:
    """The variables to export before spawning ``settings.workers`` workers: the resolved
    ``DRIFTLINE_THREADS_PER_WORKER`` and ``OMP_NUM_THREADS`` and its kin."""
    threads = threads_per_worker(settings.workers, settings.threads_per_worker)
    return {"DRIFTLINE_THREADS_PER_WORKER": str(threads), **native_thread_env(threads)}


class WorkerSupervisor(Multiprocess):
    """uvicorn's process supervisor, logging every worker it loses as an error."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket]) -> None:
        super().__init__(config, sockets=sockets)
        self._first_seen: dict[int, float] = {}

    def keep_subprocess_alive(self) -> None:
        now = time.monotonic()
        watched = list(self.processes)
        for process in watched:
            self._first_seen.setdefault(id(process), now)
        super().keep_subprocess_alive()
        for process in watched:
            if process.exitcode is None:
                continue  # still running (or not checked this round)
            age = now - self._first_seen.pop(id(process), now)
            self.report_lost_worker(process.pid, process.exitcode, age)

    def report_lost_worker(self, pid: int | None, exitcode: int, age: float) -> None:
        timeout = self.config.timeout_worker_healthcheck
        restart = "" if self.should_exit.is_set() else "; starting a new one"
        if exitcode == -signal.SIGKILL:
            log.error(
                "worker process [%s] did not answer the supervisor within %s s (%.0f s after "
                "it was started) and was killed%s. A worker must finish its imports within "
                "this time: on a slow or busy machine raise "
                "DRIFTLINE_WORKER_HEALTHCHECK_TIMEOUT_SECONDS",
                pid,
                timeout,
                age,
                restart,
            )
        else:
            log.error(
                "worker process [%s] exited with code %s (%.0f s after it was started)%s",
                pid,
                exitcode,
                age,
                restart,
            )


def run_workers(settings: Settings) -> None:
    """Serve the API with ``settings.workers`` processes until SIGINT/SIGTERM.

    The caller has exported the ``DRIFTLINE_*`` variables the workers rebuild their settings
    from; this adds the native-thread budget and runs the supervisor.
    """
    env = worker_environment(settings)
    os.environ.update(env)
    log.info(
        "%d workers, %s native threads each", settings.workers, env["DRIFTLINE_THREADS_PER_WORKER"]
    )
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through driftline's handler (text, JSON)
        timeout_graceful_shutdown=30,
        timeout_worker_healthcheck=settings.worker_healthcheck_timeout_seconds,
    )
    sock = config.bind_socket()
    try:
        WorkerSupervisor(config, sockets=[sock]).run()
    finally:
        sock.close()
