"""Making load on this machine on purpose, to show the host watcher catching an anomaly.

Each busy core is a separate Python process running a tight loop (a process, not a thread, so
the GIL does not cap it at one core); an optional extra process holds a block of memory. Every
worker is bounded twice: it stops by itself at its deadline, even if driftline dies, and
:meth:`CpuLoad.stop` terminates it early (then kills it if it lingers). Workers run the
standard library only, so they start in milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

import psutil

from driftline.errors import ConfigurationError

__all__ = ["MAX_SECONDS", "CpuLoad", "run_load"]

#: Longest load accepted, in seconds.
MAX_SECONDS: Final = 3_600.0

_CPU_WORKER: Final = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
x = 1
while time.monotonic() < end:
    for _ in range(10_000):
        x = (x * 1103515245 + 12345) % 2147483648
"""

_MEMORY_WORKER: Final = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
block = bytearray(int(sys.argv[2]) * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
while time.monotonic() < end:
    time.sleep(0.05)
"""

class CpuLoad:
    """Busy ``cores`` CPUs (and optionally hold ``memory_mb`` of memory) for ``seconds``.

    Use as a context manager, or call :meth:`start` and then :meth:`wait` or :meth:`stop`.

    Parameters
    ----------
    seconds
        How long the load lasts, in ``(0, MAX_SECONDS]``.
    cores
        Busy processes, from 1 to the number of CPUs; all CPUs when None.
    memory_mb
        Memory held by one extra process, at most half of the memory available now; 0 for none.

    Example
    -------
    >>> with CpuLoad(seconds=0.2, cores=1) as load:
    ...     len(load.pids)
    1
    >>> load.running
    False
    """

    def __init__(self, *, seconds: float, cores: int | None = None, memory_mb: int = 0) -> None:
        cpus = os.cpu_count() or 1
        if not 0.0 < seconds <= MAX_SECONDS:
            raise ConfigurationError(f"seconds must be in (0, {MAX_SECONDS:g}], got {seconds}")
        if cores is not None and not 1 <= cores <= cpus:
            raise ConfigurationError(f"cores must be in [1, {cpus}] on this host, got {cores}")
        limit = psutil.virtual_memory().available // (2 * 1024 * 1024)
        if not 0 <= memory_mb <= limit:
            raise ConfigurationError(
                f"memory_mb must be in [0, {limit}] (half the memory available now), "
                f"got {memory_mb}"
            )
        self.seconds = seconds
        self.cores = cores if cores is not None else cpus
        self.memory_mb = memory_mb
        self._workers: list[subprocess.Popen[bytes]] = []
        self._started: float | None = None

    def __repr__(self) -> str:
        return f"CpuLoad(seconds={self.seconds}, cores={self.cores}, memory_mb={self.memory_mb})"

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [w.pid for w in self._workers]

    @property
    def running(self) -> bool:
        """Whether any worker is still alive."""
        return any(w.poll() is None for w in self._workers)

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`start` (0 before)."""
        return 0.0 if self._started is None else time.monotonic() - self._started

    def _spawn(self, code: str, *args: str) -> None:
        self._workers.append(
            subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", code, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def start(self) -> Self:
        """Start the workers; they stop by themselves after ``seconds``."""
        if self._workers:
            raise ConfigurationError("this load was already started; make a new CpuLoad")
        self._started = time.monotonic()
        try:
            for _ in range(self.cores):
                self._spawn(_CPU_WORKER, repr(self.seconds))
            if self.memory_mb:
                self._spawn(_MEMORY_WORKER, repr(self.seconds), str(self.memory_mb))
        except BaseException:
            self.stop()
            raise
        return self

    def wait(self, tick: Callable[[float], None] | None = None, every: float = 0.2) -> None:
        """Block until the workers are done, calling ``tick(elapsed)`` every ``every`` s."""
        try:
            while self.running:
                if tick is not None:
                    tick(self.elapsed)
                time.sleep(every)
        finally:
            self.stop()

    def stop(self, timeout: float = 2.0) -> None:
        """Terminate the workers still running (kill after ``timeout``) and reap them all."""
        for worker in self._workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self._workers:
            try:
                worker.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_load(
    seconds: float,
    *,
    cores: int | None = None,
    memory_mb: int = 0,
    tick: Callable[[float], None] | None = None,
) -> float:
    """Run a :class:`CpuLoad` to the end (or until interrupted); the seconds it lasted.

    >>> round(run_load(0.2, cores=1), 1) >= 0.2
    True
    """
    load = CpuLoad(seconds=seconds, cores=cores, memory_mb=memory_mb).start()
    load.wait(tick)
    return load.elapsed
