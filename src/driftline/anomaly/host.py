"""Sampling this machine's metrics with psutil, one observation per call.

An observation has the columns of the synthetic dataset
(:data:`~driftline.anomaly.dataset.METRIC_COLUMNS` plus ``timestamp``), so a detector trained
on either scores the other. CPU usage and network rates are averages since the previous
sample: psutil's CPU percentage since its last call, and byte counter deltas divided by the
elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypedDict

import psutil

from driftline.errors import ConfigurationError

__all__ = ["HostSampler", "Observation", "watch"]


class Observation(TypedDict):
    """One sample of the host, keyed like the dataset's columns."""

    timestamp: str
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    net_rx_bytes_per_s: float
    net_tx_bytes_per_s: float


class HostSampler:
    """Reads CPU, memory, disk and network metrics of this host.

    The constructor takes a first reading, so the first :meth:`sample` reports averages since
    construction; sampling at a steady interval gives comparable observations. A network
    counter that goes backwards (an interface reset) gives a rate of 0 for that sample.

    Parameters
    ----------
    disk_path
        Any path on the file system whose usage is reported.
    clock
        Monotonic clock in seconds (a test can pass a fake one).

    Example
    -------
    >>> sampler = HostSampler()
    >>> time.sleep(0.05)
    >>> observation = sampler.sample()
    >>> sorted(observation)  # doctest: +NORMALIZE_WHITESPACE
    ['cpu_percent', 'disk_percent', 'memory_percent', 'net_rx_bytes_per_s',
     'net_tx_bytes_per_s', 'timestamp']
    >>> 0.0 <= observation["memory_percent"] <= 100.0
    True
    """

    def __init__(
        self, *, disk_path: str = "/", clock: Callable[[], float] = time.monotonic
    ) -> None:
        try:
            psutil.disk_usage(disk_path)
        except OSError as exc:
            raise ConfigurationError(f"disk_path {disk_path!r} cannot be read: {exc}") from exc
        self.disk_path = disk_path
        self.clock = clock
        self.reset()

    def __repr__(self) -> str:
        return f"HostSampler(disk_path={self.disk_path!r})"

    def reset(self) -> None:
        """Start the next averaging period now (e.g. after a pause that should not count)."""
        psutil.cpu_percent(interval=None)
        counters = psutil.net_io_counters()
        self._rx = int(counters.bytes_recv)
        self._tx = int(counters.bytes_sent)
        self._at = self.clock()

    def sample(self) -> Observation:
        """One observation: usage now and rates since the previous sample."""
        cpu = float(psutil.cpu_percent(interval=None))
        memory = float(psutil.virtual_memory().percent)
        disk = float(psutil.disk_usage(self.disk_path).percent)
        counters = psutil.net_io_counters()
        now = self.clock()
        elapsed = max(now - self._at, 1e-3)
        rx, tx = int(counters.bytes_recv), int(counters.bytes_sent)
        rx_rate = max(rx - self._rx, 0) / elapsed
        tx_rate = max(tx - self._tx, 0) / elapsed
        self._rx, self._tx, self._at = rx, tx, now
        return Observation(
            timestamp=datetime.now(tz=UTC).isoformat(timespec="seconds"),
            cpu_percent=round(cpu, 2),
            memory_percent=round(memory, 2),
            disk_percent=round(disk, 3),
            net_rx_bytes_per_s=round(rx_rate, 1),
            net_tx_bytes_per_s=round(tx_rate, 1),
        )


def watch(
    interval: float = 1.0,
    count: int | None = None,
    *,
    sampler: HostSampler | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Observation]:
    """Yield an observation every ``interval`` seconds, ``count`` times (forever when None).

    >>> [sorted(o)[0] for o in watch(0.01, 2)]
    ['cpu_percent', 'cpu_percent']
    """
    if not interval > 0:
        raise ConfigurationError(f"interval must be positive, got {interval}")
    if count is not None and count < 0:
        raise ConfigurationError(f"count must be at least 0, got {count}")
    source = sampler or HostSampler()
    taken = 0
    while count is None or taken < count:
        sleep(interval)
        yield source.sample()
        taken += 1
