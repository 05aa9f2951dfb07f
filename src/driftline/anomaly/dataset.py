"""A seeded synthetic host: one row of machine metrics per interval, with labeled anomalies.

Normal behaviour follows a working day: CPU, memory and network traffic rise in the afternoon
and fall at night, weekends are quieter, an hourly job adds a short CPU bump, memory caches
grow and are released, and the disk fills slowly with logs that are rotated every night. Noise
is autocorrelated, as real gauges are.

Anomalies are *episodes* (runs of consecutive rows), each of one kind:

``cpu_spike``
    a runaway process pins the CPU near 100 % for a few minutes.
``memory_leak``
    memory climbs steadily to almost full, then the process is restarted. The first part of the
    ramp still looks normal row by row, which is what makes leaks hard to catch early.
``disk_fill``
    something writes to disk quickly; usage climbs 15–35 points, then is cleaned up.
``network_exfiltration``
    outbound traffic is many times its usual level while inbound stays normal.
``combined``
    CPU and inbound traffic together (a crypto-miner or a flood of requests).

Every row carries ``is_anomaly`` (0 or 1) and ``anomaly_kind`` (``"none"`` on normal rows).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from driftline.errors import ConfigurationError

__all__ = [
    "ANOMALY_KINDS",
    "KIND_COLUMN",
    "LABEL_COLUMN",
    "METRIC_COLUMNS",
    "TIMESTAMP_COLUMN",
    "generate_host_metrics",
]

TIMESTAMP_COLUMN: Final = "timestamp"
LABEL_COLUMN: Final = "is_anomaly"
KIND_COLUMN: Final = "anomaly_kind"
#: The metric columns, in order: shared by the generator, the host sampler and the models.
METRIC_COLUMNS: Final = (
    "cpu_percent",
    "memory_percent",
    "disk_percent",
    "net_rx_bytes_per_s",
    "net_tx_bytes_per_s",
)
ANOMALY_KINDS: Final = (
    "cpu_spike",
    "memory_leak",
    "disk_fill",
    "network_exfiltration",
    "combined",
)

#: Episode length range (rows, inclusive) of each kind.
_LENGTHS: Final = {
    "cpu_spike": (5, 15),
    "memory_leak": (30, 90),
    "disk_fill": (15, 45),
    "network_exfiltration": (8, 25),
    "combined": (8, 25),
}
#: Normal rows kept between two episodes.
_GAP: Final = 30
_START: Final = pd.Timestamp("2024-01-01 00:00:00", tz="UTC")


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """Autocorrelated noise with stationary standard deviation ``sigma``."""
    shocks = rng.normal(0.0, sigma * np.sqrt(1.0 - phi**2), n)
    out = np.empty(n)
    level = rng.normal(0.0, sigma)
    for i in range(n):
        level = phi * level + shocks[i]
        out[i] = level
    return out


def _episodes(
    rng: np.random.Generator, n: int, anomalous_rows: int
) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, stop, kind)`` episodes covering about ``anomalous_rows``.

    Kinds take turns in a seeded order, so that every kind appears once there is room.
    """
    order = [str(k) for k in rng.permutation(ANOMALY_KINDS)]
    taken = np.zeros(n, dtype=bool)
    episodes: list[tuple[int, int, str]] = []
    covered = 0
    attempts = 0
    while covered < anomalous_rows and attempts < 1_000:
        attempts += 1
        kind = order[len(episodes) % len(order)]
        low, high = _LENGTHS[kind]
        length = min(int(rng.integers(low, high + 1)), max(low, anomalous_rows - covered))
        if length + 2 * _GAP >= n:
            continue
        start = int(rng.integers(_GAP, n - length - _GAP + 1))
        if taken[start - _GAP : start + length + _GAP].any():
            continue
        taken[start : start + length] = True
        episodes.append((start, start + length, kind))
        covered += length
    return sorted(episodes)


def generate_host_metrics(
    n: int = 10_080,
    *,
    seed: int = 0,
    anomaly_rate: float = 0.03,
    interval_seconds: float = 60.0,
) -> pd.DataFrame:
    """Generate ``n`` consecutive observations of one host's metrics, with labeled anomalies.

    Parameters
    ----------
    n
        Number of rows (the default is one week of one-minute samples).
    seed
        Seed of the random generator; the same seed gives the same rows.
    anomaly_rate
        Share of rows inside anomaly episodes, in ``[0, 0.5]`` (reached approximately: episodes
        are whole).
    interval_seconds
        Time between two rows.

    Example
    -------
    >>> frame = generate_host_metrics(2_880, seed=1)
    >>> list(frame.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['timestamp', 'cpu_percent', 'memory_percent', 'disk_percent', 'net_rx_bytes_per_s',
     'net_tx_bytes_per_s', 'is_anomaly', 'anomaly_kind']
    >>> round(float(frame["is_anomaly"].mean()), 3)
    0.03
    >>> frame.groupby("anomaly_kind")["cpu_percent"].median().round(0).to_dict()
    {'combined': 87.0, 'cpu_spike': 94.0, 'memory_leak': 22.0, 'none': 29.0}
    """
    if n < 1:
        raise ConfigurationError(f"n must be at least 1, got {n}")
    if not 0.0 <= anomaly_rate <= 0.5:
        raise ConfigurationError(f"anomaly_rate must be in [0, 0.5], got {anomaly_rate}")
    if interval_seconds <= 0:
        raise ConfigurationError(f"interval_seconds must be positive, got {interval_seconds}")
    rng = np.random.default_rng(seed)
    seconds = np.arange(n) * interval_seconds
    hours = seconds / 3600.0
    hour_of_day = hours % 24.0
    weekend = ((hours // 24.0) % 7.0) >= 5.0
    # Activity in [0, 1]: lowest at 03:00, highest at 15:00; weekends at 60 %.
    activity = 0.5 - 0.5 * np.cos(2.0 * np.pi * (hour_of_day - 3.0) / 24.0)
    activity = activity * np.where(weekend, 0.6, 1.0)
    minute_of_hour = (seconds / 60.0) % 60.0
    hourly_job = np.where(minute_of_hour < 2.0, 12.0, 0.0)

    cpu = 10.0 + 35.0 * activity + hourly_job + _ar1(rng, n, 0.8, 3.0)
    # Caches grow by about a point an hour and are released every six hours.
    cache = (hours % 6.0) * 1.0
    memory = 38.0 + 10.0 * activity + cache + _ar1(rng, n, 0.9, 0.8)
    # Logs add about three points a day; rotation at midnight takes them back.
    disk = 52.0 + 0.002 * hours + 3.0 * (hour_of_day / 24.0) + _ar1(rng, n, 0.95, 0.1)
    rx = np.exp(np.log(2.0e6) + 1.2 * activity + _ar1(rng, n, 0.7, 0.25))
    tx = 0.6 * rx * np.exp(_ar1(rng, n, 0.5, 0.2))

    is_anomaly = np.zeros(n, dtype=np.int64)
    kind_column = np.full(n, "none", dtype=object)
    for start, stop, kind in _episodes(rng, n, round(anomaly_rate * n)):
        rows = slice(start, stop)
        length = stop - start
        ramp = np.linspace(0.0, 1.0, length)
        if kind == "cpu_spike":
            cpu[rows] = rng.uniform(88.0, 100.0, length)
        elif kind == "memory_leak":
            peak = rng.uniform(92.0, 99.0)
            memory[rows] = memory[start] + (peak - memory[start]) * ramp
        elif kind == "disk_fill":
            disk[rows] = disk[rows] + rng.uniform(15.0, 35.0) * ramp
        elif kind == "network_exfiltration":
            tx[rows] = tx[rows] * rng.uniform(8.0, 30.0) * np.exp(rng.normal(0.0, 0.2, length))
        else:  # combined
            cpu[rows] = rng.uniform(80.0, 98.0, length)
            rx[rows] = rx[rows] * rng.uniform(5.0, 15.0) * np.exp(rng.normal(0.0, 0.2, length))
        is_anomaly[rows] = 1
        kind_column[rows] = kind

    return pd.DataFrame(
        {
            TIMESTAMP_COLUMN: _START + pd.to_timedelta(seconds, unit="s"),
            "cpu_percent": np.clip(cpu, 0.0, 100.0).round(2),
            "memory_percent": np.clip(memory, 0.0, 100.0).round(2),
            "disk_percent": np.clip(disk, 0.0, 100.0).round(3),
            "net_rx_bytes_per_s": rx.round(1),
            "net_tx_bytes_per_s": tx.round(1),
            LABEL_COLUMN: is_anomaly,
            KIND_COLUMN: pd.Series(kind_column, dtype=object),
        }
    )
