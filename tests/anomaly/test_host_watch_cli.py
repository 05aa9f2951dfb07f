"""`driftline host watch` as a real process: /metrics, the Redis stream, the registry, SIGTERM;
a real Prometheus scrapes it and `driftline anomaly import-prometheus` builds a training table
from what it stored. Prometheus comes from the Debian package (skipped without it on a laptop,
failed without it under CI)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

from driftline.anomaly.dataset import METRIC_COLUMNS
from driftline.cli import app
from driftline.config import Settings
from driftline.models.bundle import MODEL_FILE
from driftline.registry import CHAMPION, Registry
from driftline.store import open_store
from tests.streams.conftest import REDIS_URL
from tests.support.promtools import PrometheusServer, require_binary, run_promtool
from tests.support.servers import free_port

runner = CliRunner()
HOST_GAUGES = (
    "driftline_host_cpu_usage_ratio",
    "driftline_host_memory_usage_ratio",
    "driftline_host_disk_usage_ratio",
    "driftline_host_network_receive_bytes_per_second",
    "driftline_host_network_transmit_bytes_per_second",
)


def flat(text: str) -> str:
    return " ".join(text.split())


def parse_metrics(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


@dataclass
class Watching:
    proc: subprocess.Popen[bytes]
    home: Path
    port: int
    stream: str | None
    log: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _redis_or_none() -> redis.Redis | None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        return None
    return client


@pytest.fixture(scope="module")
def watching(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[Watching]:
    """`python -m driftline host watch` learning a 3 s baseline, sampling every 0.2 s (it runs
    until the module is done: its 600 s are a bound, not a wait)."""
    home = tmp_path_factory.mktemp("watch-home")
    shutil.copy(mlflow_template, home / "mlflow.db")
    port = free_port()
    client = _redis_or_none()
    stream = f"test:{uuid.uuid4().hex[:12]}:host" if client is not None else None
    args = [
        sys.executable, "-m", "driftline", "--home", str(home), "host", "watch",
        "--interval", "0.2", "--baseline", "3s", "--duration", "600s",
        "--metrics-port", str(port), "--quiet",
    ]  # fmt: skip
    if stream is not None:
        args += ["--stream", stream, "--redis-url", REDIS_URL]
    log = home / "watch.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    watching = Watching(proc, home, port, stream, log)
    try:
        yield watching
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if client is not None:
            client.delete(stream)
            client.close()


def scraped(watching: Watching, timeout: float = 150.0) -> dict[str, float]:
    """/metrics once the baseline is learnt and a few observations were scored (a wait, not a
    speed bound: the subprocess imports its libraries first, slow on a loaded machine)."""
    deadline = time.monotonic() + timeout
    values: dict[str, float] = {}
    while time.monotonic() < deadline:
        assert watching.proc.poll() is None, watching.output()
        try:
            values = parse_metrics(httpx.get(watching.metrics_url, timeout=2).text)
        except httpx.HTTPError:
            values = {}
        if (
            values.get("driftline_host_learning_baseline") == 0
            and values.get("driftline_host_observations_total", 0) >= 20
        ):
            return values
        time.sleep(0.2)
    raise AssertionError(f"no scored observation in {timeout}s: {values}\n{watching.output()}")


def test_metrics_show_the_host_gauges_and_the_anomaly_score(watching: Watching) -> None:
    values = scraped(watching)
    for name in HOST_GAUGES:
        assert name in values, name
    assert 0 <= values["driftline_host_cpu_usage_ratio"] <= 1
    assert 0 < values["driftline_host_memory_usage_ratio"] < 1
    assert 0 < values["driftline_host_disk_usage_ratio"] < 1
    score = values["driftline_host_anomaly_score"]
    assert math.isfinite(score) and 0 < score <= 1
    assert values["driftline_host_anomaly_flag"] in (0.0, 1.0)
    assert 0 < values["driftline_host_anomaly_threshold"] < 1
    assert values["driftline_host_model_version"] == 1
    assert values['driftline_host_models_trained_total{reason="baseline"}'] == 1
    promtool = shutil.which("promtool")
    if promtool is not None:
        run_promtool(promtool, "check", "metrics", stdin=httpx.get(watching.metrics_url).content)


def test_observations_are_published_to_the_stream(watching: Watching) -> None:
    if watching.stream is None:
        pytest.skip("Redis on 127.0.0.1:6379 unreachable")
    scraped(watching)
    client = _redis_or_none()
    assert client is not None
    try:
        entries = client.xrange(watching.stream)
        assert len(entries) >= 20
        phases = [fields["phase"] for _, fields in entries]  # type: ignore[misc]
        assert phases[:15] == ["baseline"] * 15 and "scoring" in phases
        _, last = entries[-1]  # type: ignore[misc]
        assert {"features", "timestamp", "host", "anomaly_score", "predicted_anomaly"} <= set(last)
        assert last["model_version"] == "1"
    finally:
        client.close()


@pytest.mark.slow
def test_prometheus_scrapes_the_watcher_and_import_builds_a_training_table(
    watching: Watching, tmp_path: Path
) -> None:
    prometheus = require_binary("prometheus")
    scraped(watching)
    with PrometheusServer(prometheus, tmp_path, [f"127.0.0.1:{watching.port}"]) as prom:
        prom.wait_for(
            "count_over_time(driftline_host_anomaly_score[1m])",
            lambda r: bool(r) and float(r[0]["value"][1]) >= 6,
            timeout=30,
        )
        table = tmp_path / "host.csv"
        result = runner.invoke(
            app,
            [
                "anomaly", "import-prometheus", "--url", prom.url, "--start", "now-30s",
                "--end", "now", "--step", "1s", "-o", str(table),
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(table)
        assert list(frame.columns) == ["timestamp", *METRIC_COLUMNS]
        assert len(frame) >= 5 and not frame.isna().any().any()
        assert frame["cpu_percent"].between(0, 100).all()
        assert frame["memory_percent"].between(0.1, 100).all()
        timestamps = pd.to_datetime(frame["timestamp"])
        assert timestamps.is_monotonic_increasing
        assert (timestamps.diff().dropna() == pd.Timedelta(seconds=1)).all()

        # Named queries of one's own; a query with several series gives a column each.
        custom = tmp_path / "custom.parquet"
        result = runner.invoke(
            app,
            [
                "anomaly", "import-prometheus", "--url", prom.url, "--start", "now-20s",
                "--step", "2s", "-o", str(custom),
                "--query", "score=driftline_host_anomaly_score",
                "--query", "cpu=100 * driftline_host_cpu_usage_ratio",
                "--query", 'flagged=driftline_host_anomaly_flag{job="driftline"}',
                "--query", "up=up", "--json",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        frame = pd.read_parquet(custom)
        assert list(frame.columns) == ["timestamp", "score", "cpu", "flagged", "up"]
        assert (frame["up"] == 1).all() and len(frame) >= 3
        summary = json.loads(result.stdout)  # --json: the table's data, nothing else on stdout
        assert summary["rows"] == len(frame) and summary["output"] == str(custom)
        assert [c["column"] for c in summary["columns"]] == ["score", "cpu", "flagged", "up"]
        for c in summary["columns"]:
            assert c["values"] == int(frame[c["column"]].notna().sum())
            assert c["mean"] == pytest.approx(float(frame[c["column"]].mean()))

        # The table trains a detector, as any metrics file does.
        bundle = tmp_path / "bundle"
        home = tmp_path / "home"
        result = runner.invoke(
            app,
            ["--home", str(home), "anomaly", "train", str(table), "-o", str(bundle),
             "--no-register"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "no evaluation" in flat(result.output) and (bundle / MODEL_FILE).exists()

        # Clear errors.
        bad = runner.invoke(
            app, ["anomaly", "import-prometheus", "--url", prom.url, "-q", "x=rate(", "-o",
                  str(tmp_path / "x.csv")],
        )  # fmt: skip
        assert bad.exit_code == 1
        assert "refused query 'x' (rate()" in flat(bad.output)
        assert "parse error" in flat(bad.output)
        empty = runner.invoke(
            app, ["anomaly", "import-prometheus", "--url", prom.url, "-q",
                  "nothing=no_such_metric_anywhere", "-o", str(tmp_path / "x.csv")],
        )  # fmt: skip
        assert empty.exit_code == 1 and "returned no data between" in flat(empty.output)
    unreachable = runner.invoke(
        app, ["anomaly", "import-prometheus", "--url", f"http://127.0.0.1:{free_port()}",
              "--timeout", "2", "-o", str(tmp_path / "x.csv")],
    )  # fmt: skip
    assert unreachable.exit_code == 1
    assert "cannot reach Prometheus at http://127.0.0.1:" in flat(unreachable.output)


def test_sigterm_stops_the_watcher_cleanly_and_the_model_is_registered(
    watching: Watching,
) -> None:
    scraped(watching)
    watching.proc.send_signal(signal.SIGTERM)
    assert watching.proc.wait(30) == 0, watching.output()
    out = flat(watching.output())
    assert "learning a baseline of 15 observations" in out
    assert "registered host-anomaly version 1 (champion)" in out
    assert "observations," in out and "scored," in out
    with pytest.raises(httpx.HTTPError):
        httpx.get(watching.metrics_url, timeout=1)
    settings = Settings(home=watching.home)
    store = open_store(settings.database_url)
    try:
        registry = Registry.from_settings(
            settings.model_copy(update={"model_name": "host-anomaly"}), store
        )
        assert registry.alias(CHAMPION) == 1
        (version,) = registry.versions()
        assert version.kind == "iforest" and version.tags["driftline.trained_by"] == "host-watch"
        bundle = registry.load(1)
        assert bundle.schema.names == METRIC_COLUMNS and bundle.meta["n_train"] == 15
    finally:
        store.dispose()


def test_a_second_watch_scores_with_the_registered_champion(
    watching: Watching,
) -> None:
    if watching.proc.poll() is None:
        pytest.skip("needs the first watcher to have stopped")
    result = runner.invoke(
        app,
        ["--home", str(watching.home), "host", "watch", "--interval", "0.05", "--count", "3",
         "--metrics-port", "0", "--retrain"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "scoring with host-anomaly version 1 (champion)" in out
    assert "3 observations, 3 scored" in out


def test_watch_arguments_fail_clearly(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    cases = [
        (["--kind", "rf"], "the supervised forest needs labeled anomalies"),
        (["--baseline", "1s", "--interval", "0.5"], "at least 10 observations; 1s at 0.5s"),
        (["--redis-url", f"redis://127.0.0.1:{free_port()}/0"], "Redis unreachable at"),
        (["--baseline", "soon"], "--baseline must be a duration"),
    ]
    for args, message in cases:
        result = runner.invoke(
            app, [*home, "host", "watch", "--learn", "--no-register", "--count", "1",
                  "--metrics-port", "0", *args],
        )  # fmt: skip
        assert result.exit_code == 1, (args, result.output)
        assert message in flat(result.output), (args, result.output)
    busy = free_port()
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        result = runner.invoke(
            app, [*home, "host", "watch", "--learn", "--no-register", "--count", "1",
                  "--metrics-port", str(busy)],
        )  # fmt: skip
    assert result.exit_code == 1 and f"cannot serve metrics on 127.0.0.1:{busy}" in flat(
        result.output
    )
