"""The host watcher's loop on a simulated host: baseline, scoring, drift checks, retraining,
registration and audit, metrics, and the Redis stream."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from driftline.anomaly.dataset import METRIC_COLUMNS
from driftline.anomaly.detector_training import train_anomaly_bundle
from driftline.anomaly.watch_io import HostMetrics, StreamPublisher, registering
from driftline.anomaly.watcher import HostWatcher, Trained, WatchEvent, WatchPolicy
from driftline.errors import ConfigurationError, DataError
from driftline.registry import CHAMPION, Registry
from driftline.store import queries
from driftline.streams.source import StreamError, StreamEvent, decode_event
from tests.streams.conftest import REDIS_URL

NOISE = {
    "cpu_percent": 3.0,
    "memory_percent": 0.4,
    "disk_percent": 0.02,
    "net_rx_bytes_per_s": 800.0,
    "net_tx_bytes_per_s": 400.0,
}


class FakeHost:
    """A host whose metrics hover around ``level`` with seeded noise; tests move the level."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.level = {
            "cpu_percent": 20.0,
            "memory_percent": 40.0,
            "disk_percent": 55.0,
            "net_rx_bytes_per_s": 10_000.0,
            "net_tx_bytes_per_s": 4_000.0,
        }
        self.resets = 0
        self.n = 0

    def sample(self) -> dict[str, Any]:
        self.n += 1
        row: dict[str, Any] = {"timestamp": f"2026-01-01T00:{self.n // 60:02d}:{self.n % 60:02d}"}
        for name, level in self.level.items():
            row[name] = max(0.0, level + float(self.rng.normal(0.0, NOISE[name])))
        return row

    def reset(self) -> None:
        self.resets += 1


def steps(watcher: HostWatcher, n: int) -> list[WatchEvent]:
    return [watcher.step() for _ in range(n)]


def flag_rate(events: list[WatchEvent]) -> float:
    return float(np.mean([bool(e.flagged) for e in events]))


def test_learns_a_baseline_then_flags_what_is_unlike_it() -> None:
    host = FakeHost()
    trained: list[Trained] = []

    def register(t: Trained) -> int:
        trained.append(t)
        return 7

    watcher = HostWatcher(host, policy=WatchPolicy(baseline_rows=200), register=register)
    baseline = steps(watcher, 200)
    assert [e.phase for e in baseline] == ["baseline"] * 200
    assert all(e.score is None and e.flagged is None for e in baseline)
    assert baseline[-1].baseline_progress == (200, 200)
    done = baseline[-1].trained
    assert done is not None and done.rows == 200 and done.version == 7 and done.drift is None
    assert done.bundle.kind == "iforest" and done.bundle.meta["trained_by"] == "host-watch"
    assert len(trained) == 1 and trained[0].version is None  # the callback assigns it
    assert host.resets == 1, "the sampler restarts its averaging after training"

    normal = steps(watcher, 150)
    assert all(e.phase == "scoring" and e.model_version == 7 for e in normal)
    assert flag_rate(normal) < 0.1
    host.level["cpu_percent"] = 97.0  # a runaway process; every other metric as usual
    spike = steps(watcher, 20)
    assert flag_rate(spike) > 0.9
    assert min(e.score or 0 for e in spike) > max(e.score or 0 for e in normal[:50])
    assert all(e.threshold is not None and e.threshold > 0 for e in spike)


def test_a_lasting_change_of_normal_retrains_the_model() -> None:
    host = FakeHost(seed=1)
    versions = iter(range(1, 10))
    policy = WatchPolicy(baseline_rows=150, drift_window=60, confirmations=2, seed=0)
    watcher = HostWatcher(host, policy=policy, register=lambda _t: next(versions))
    steps(watcher, 150)
    calm = steps(watcher, 120)
    checks = [e for e in calm if e.drift is not None]
    assert [e.index for e in checks] == [209, 269], "one check per full window"
    assert all(e.drift is not None and e.drift.severity == "none" for e in checks)

    # A new service on the machine: more memory and CPU in use, from now on.
    host.level["memory_percent"] = 52.0
    host.level["cpu_percent"] = 45.0
    after = steps(watcher, 120)
    first, second = (e for e in after if e.drift is not None)
    assert first.drift is not None and first.drift.severity == "critical"
    assert first.decision is not None and not first.decision.retrain
    assert first.trained is None and flag_rate(after[:60]) > 0.8
    assert {"memory_percent", "cpu_percent"} <= set(first.drift.drifted_features)
    assert second.decision is not None and second.decision.retrain
    retrained = second.trained
    assert retrained is not None and retrained.version == 2 and retrained.replaced == 1
    assert retrained.rows == 120 and retrained.drift is second.drift
    assert "critical drift" in retrained.reason
    assert watcher.version == 2

    new_normal = steps(watcher, 100)
    assert all(e.model_version == 2 for e in new_normal)
    assert flag_rate(new_normal) < 0.15, "the new level is normal now"


def test_an_anomaly_shorter_than_a_window_never_becomes_normal() -> None:
    host = FakeHost(seed=2)
    policy = WatchPolicy(baseline_rows=150, drift_window=60, confirmations=3)
    watcher = HostWatcher(host, policy=policy)
    steps(watcher, 150)
    steps(watcher, 40)
    host.level["cpu_percent"] = 98.0
    burst = steps(watcher, 50)  # spans two windows
    host.level["cpu_percent"] = 20.0
    later = steps(watcher, 240)
    assert flag_rate(burst) > 0.9
    events = burst + later
    assert not any(e.trained for e in events)
    severities = [e.drift.severity for e in events if e.drift is not None]
    assert severities.count("critical") <= 2 and severities[-1] == "none"
    assert watcher.version is None and flag_rate(later) < 0.1


def test_starting_from_a_model_skips_the_baseline_and_checks_its_kind() -> None:
    host = FakeHost(seed=3)
    rows = [host.sample() for _ in range(200)]
    import pandas as pd

    bundle = train_anomaly_bundle(pd.DataFrame(rows), "iforest", seed=0)
    watcher = HostWatcher(host, bundle=bundle, version=4)
    event = watcher.step()
    assert event.phase == "scoring" and event.model_version == 4 and event.score is not None

    from driftline.data.synthetic import TARGET, generate_loans
    from driftline.training import train_model

    supervised = train_model(generate_loans(400, seed=1), TARGET, kind="logreg").bundle
    with pytest.raises(DataError, match="needs an anomaly detector"):
        HostWatcher(host, bundle=supervised)


def test_policy_and_run_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"baseline_rows must be an integer >= 10, got 5"):
        WatchPolicy(baseline_rows=5)
    with pytest.raises(ConfigurationError, match="contamination must be in"):
        WatchPolicy(contamination=0.9)
    with pytest.raises(ConfigurationError, match="confirmations must be"):
        WatchPolicy(confirmations=0)
    watcher = HostWatcher(FakeHost(), policy=WatchPolicy(baseline_rows=10))
    with pytest.raises(ConfigurationError, match="interval must be"):
        watcher.run(interval=0)
    with pytest.raises(ConfigurationError, match="duration must be"):
        watcher.run(interval=0.01, duration=-1)


def test_run_stops_at_count_duration_or_stop() -> None:
    watcher = HostWatcher(FakeHost(), policy=WatchPolicy(baseline_rows=10))
    seen: list[WatchEvent] = []
    assert watcher.run(interval=0.005, count=12, on_event=seen.append) == 12
    assert [e.index for e in seen] == list(range(12)) and seen[9].trained is not None
    started = time.monotonic()
    assert 1 <= watcher.run(interval=0.01, duration=0.1) <= 10
    assert time.monotonic() - started < 1.0
    stop = threading.Event()
    later: list[WatchEvent] = []

    def collect(event: WatchEvent) -> None:
        later.append(event)
        if len(later) == 3:
            stop.set()

    assert watcher.run(interval=0.005, on_event=collect, stop=stop) == 3


def test_metrics_follow_the_events() -> None:
    host = FakeHost()
    metrics = HostMetrics()
    watcher = HostWatcher(host, policy=WatchPolicy(baseline_rows=100), register=lambda _t: 3)
    for event in steps(watcher, 10):
        metrics.update(event)
    text = metrics.render().decode()
    assert "driftline_host_learning_baseline 1.0" in text
    assert "driftline_host_anomaly_score NaN" in text
    for event in steps(watcher, 95):
        metrics.update(event)
    host.level["cpu_percent"] = 99.0
    metrics.update(watcher.step())
    text = metrics.render().decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["driftline_host_learning_baseline"] == 0
    assert values["driftline_host_model_version"] == 3
    assert values["driftline_host_observations_total"] == 106
    assert values["driftline_host_anomaly_flag"] == 1
    assert values["driftline_host_anomaly_score"] > values["driftline_host_anomaly_threshold"]
    assert 0.9 < values["driftline_host_cpu_usage_ratio"] <= 1.1
    assert 0.3 < values["driftline_host_memory_usage_ratio"] < 0.5
    assert values["driftline_host_network_receive_bytes_per_second"] > 1_000
    assert values['driftline_host_models_trained_total{reason="baseline"}'] == 1


# --- the registry edge ------------------------------------------------------------------------


def test_retrains_are_registered_promoted_and_audited(registry: Registry) -> None:
    registry.model_name = f"host-anomaly-{uuid.uuid4().hex[:6]}"
    host = FakeHost(seed=4)
    policy = WatchPolicy(baseline_rows=120, drift_window=50, confirmations=2)
    watcher = HostWatcher(host, policy=policy, register=registering(registry))
    steps(watcher, 120)
    assert watcher.version == 1 and registry.alias(CHAMPION) == 1
    steps(watcher, 50)
    host.level["memory_percent"] = 60.0
    events = steps(watcher, 100)
    (retrained,) = (e.trained for e in events if e.trained is not None)
    assert retrained.version == 2 and registry.alias(CHAMPION) == 2
    assert [v.version for v in registry.versions()] == [2, 1]
    assert registry.versions()[0].tags.get("driftline.trained_by") == "host-watch"
    moves = registry.history(CHAMPION)
    assert [(m.from_version, m.to_version) for m in moves][:1] == [(1, 2)]
    assert "critical drift" in moves[0].reason
    with registry.store.sessions() as session:
        (audit,) = queries.list_audit(session=session, kinds=["host_retrain"])
    assert audit.model_version == 2 and audit.actor == "host-watch"
    assert audit.details["from_version"] == 1 and audit.details["to_version"] == 2
    assert "memory_percent" in audit.details["drifted_features"]
    assert audit.details["severity"] == "critical" and audit.details["reasons"]


# --- the Redis edge ---------------------------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"Redis on 127.0.0.1:6379 unreachable: {exc}")
    yield client
    client.close()


def test_observations_are_published_in_the_stream_event_format(
    redis_client: redis.Redis,
) -> None:
    key = f"test:{uuid.uuid4().hex[:12]}:host"
    publisher = StreamPublisher(REDIS_URL, key, maxlen=1_000, host="box")
    try:
        publisher.check()
        watcher = HostWatcher(FakeHost(), policy=WatchPolicy(baseline_rows=10))
        for _ in range(13):
            publisher.publish(watcher.step())
        entries: list[tuple[str, dict[str, str]]] = redis_client.xrange(key)  # type: ignore[assignment]
        assert len(entries) == 13
        first, last = entries[0][1], entries[-1][1]
        assert first["phase"] == "baseline" and "anomaly_score" not in first
        assert last["phase"] == "scoring" and last["host"] == "box"
        assert last["predicted_anomaly"] in {"0", "1"} and float(last["anomaly_score"]) > 0
        features, request_id, errors = decode_event(StreamEvent(entries[-1][0], last))
        assert not errors and request_id is None
        assert set(features) == set(METRIC_COLUMNS)
        assert json.loads(last["features"]) == features
    finally:
        redis_client.delete(key)
        publisher.close()


def test_an_unreachable_redis_is_a_clear_error() -> None:
    from tests.support.servers import free_port

    publisher = StreamPublisher(f"redis://127.0.0.1:{free_port()}/0", "x", timeout=0.5)
    with pytest.raises(StreamError, match=r"Redis unreachable at 127\.0\.0\.1"):
        publisher.check()
    publisher.close()
    with pytest.raises(ConfigurationError, match="bad Redis URL"):
        StreamPublisher("mysql://nope", "x")


def test_the_readme_lists_every_host_metric_and_option() -> None:
    from pathlib import Path

    import typer

    from driftline.cli.anomaly import anomaly_app, host_app

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for family in HostMetrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in readme, name
    for app, command in (
        (host_app, "watch"),
        (host_app, "load"),
        (anomaly_app, "import-prometheus"),
    ):
        group: Any = typer.main.get_command(app)
        for param in group.commands[command].params:
            if param.param_type_name == "option":
                names = [*param.opts, *param.secondary_opts]
                found = [o for o in names if re.search(rf"(?<![\w-]){o}(?![\w-])", readme)]
                assert found, (command, names)
