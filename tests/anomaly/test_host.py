"""The psutil sampler and the load generator (real processes, a few seconds at most)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import namedtuple
from datetime import datetime

import psutil
import pytest

from driftline.anomaly.dataset import METRIC_COLUMNS
from driftline.anomaly.host import HostSampler, watch
from driftline.anomaly.load import CpuLoad, run_load
from driftline.durations import parse_duration
from driftline.errors import ConfigurationError

Counters = namedtuple("Counters", "bytes_recv bytes_sent")


def test_sample_has_the_dataset_columns_and_sane_values() -> None:
    sampler = HostSampler()
    time.sleep(0.1)
    observation = sampler.sample()
    assert set(observation) == {"timestamp", *METRIC_COLUMNS}
    datetime.fromisoformat(observation["timestamp"])
    for value in (
        observation["cpu_percent"],
        observation["memory_percent"],
        observation["disk_percent"],
    ):
        assert 0.0 <= value <= 100.0
    assert observation["memory_percent"] > 0.0 and observation["disk_percent"] > 0.0
    assert observation["net_rx_bytes_per_s"] >= 0.0 and observation["net_tx_bytes_per_s"] >= 0.0


def test_network_rates_are_counter_deltas_over_elapsed_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = iter([Counters(1_000, 500), Counters(3_000, 1_500), Counters(100, 1_700)])
    monkeypatch.setattr(psutil, "net_io_counters", lambda: next(readings))
    now = iter([10.0, 12.0, 14.0])
    sampler = HostSampler(clock=lambda: next(now))
    first = sampler.sample()
    assert (first["net_rx_bytes_per_s"], first["net_tx_bytes_per_s"]) == (1_000.0, 500.0)
    second = sampler.sample()  # rx counter went backwards: an interface reset
    assert (second["net_rx_bytes_per_s"], second["net_tx_bytes_per_s"]) == (0.0, 100.0)


def test_watch_takes_count_samples_at_the_interval() -> None:
    slept: list[float] = []
    observations = list(watch(0.5, 3, sleep=slept.append))
    assert len(observations) == 3 and slept == [0.5, 0.5, 0.5]
    with pytest.raises(ConfigurationError, match="interval must be positive"):
        next(watch(0.0, 1))
    with pytest.raises(ConfigurationError, match="disk_path"):
        HostSampler(disk_path="/no/such/path/anywhere")


def test_parse_duration() -> None:
    assert parse_duration("20s") == 20.0
    assert parse_duration("2m") == 120.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration(" 1.5 ") == 1.5
    for bad in ("", "abc", "-3s", "0s", "5 days"):
        with pytest.raises(ConfigurationError, match="duration"):
            parse_duration(bad)


#: A reference CPU hog: a tight loop, bounded by its own deadline.
_SPIN = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def test_load_raises_cpu_usage_measured_by_psutil() -> None:
    """The load worker burns CPU like a tight loop does. Judged as a ratio to a reference
    spinner running at the same time, so a machine busy with other work (which slows both
    alike) cannot decide it; a worker that idled would score near 0."""
    spinner = subprocess.Popen([sys.executable, "-c", _SPIN, "30"])
    try:
        with CpuLoad(seconds=30.0, cores=1) as load:
            (pid,) = load.pids
            worker, reference = psutil.Process(pid), psutil.Process(spinner.pid)
            time.sleep(0.3)
            before = _cpu_seconds(worker), _cpu_seconds(reference)
            system = psutil.cpu_percent(interval=1.0)
            busy = _cpu_seconds(worker) - before[0]
            spun = _cpu_seconds(reference) - before[1]
            assert spun > 0.0
            assert busy >= 0.5 * spun, f"worker {busy:.2f} s of CPU, a tight loop {spun:.2f} s"
            # One busy core of N shows in the machine-wide figure too.
            assert system > 60.0 / (psutil.cpu_count() or 1)
    finally:
        spinner.kill()
        spinner.wait()
    assert not load.running
    assert load.elapsed < 15.0, "leaving the block stops the load early (its deadline is 30 s)"


def test_workers_stop_by_themselves_at_the_deadline() -> None:
    load = CpuLoad(seconds=0.5, cores=1, memory_mb=8).start()
    assert len(load.pids) == 2
    deadline = time.monotonic() + 3.0
    while load.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not load.running
    load.stop()  # reaps; a second stop is harmless
    load.stop()
    assert run_load(0.2, cores=1) >= 0.2


def test_load_arguments_are_bounded() -> None:
    with pytest.raises(ConfigurationError, match=r"seconds must be in \(0, 3600\]"):
        CpuLoad(seconds=7_200)
    with pytest.raises(ConfigurationError, match="cores must be in"):
        CpuLoad(seconds=1, cores=10_000)
    with pytest.raises(ConfigurationError, match="memory_mb must be in"):
        CpuLoad(seconds=1, memory_mb=10**9)
    load = CpuLoad(seconds=0.2, cores=1).start()
    with pytest.raises(ConfigurationError, match="already started"):
        load.start()
    load.stop()
