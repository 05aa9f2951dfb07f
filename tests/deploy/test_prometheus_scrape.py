"""A real Prometheus scrapes a running driftline service; promtool lints what /metrics says.

Needs the ``prometheus`` and ``promtool`` binaries (Debian package ``prometheus``): the tests
skip without them on a laptop and fail without them when CI is set."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.service.metrics import ServiceMetrics
from driftline.store import open_store
from tests.deploy.deploytools import panel_queries, substitute_variables
from tests.support.promtools import (
    DEPLOY,
    PrometheusServer,
    family_name,
    require_binary,
    run_promtool,
)
from tests.support.records import row
from tests.support.servers import serve_subprocess

# Dashboard panels that have data as soon as a service answers /predict.
LIVE_PANELS = {
    "Champion version",
    "Champion loaded",
    "Requests / s",
    "Requests by endpoint",
    "Responses by status",
    "/predict latency (HTTP)",
    "Prediction latency by variant",
    "p95 latency by endpoint",
    "Predictions by class",
    "Class share",
    "Predictions by variant",
    "Mean confidence",
    "Confidence distribution",
    "Model version per alias",
    "Served version per replica",
    "Prediction-log queue",
}
PREDICTIONS = 30  # /predict calls that succeed
INVALID = 4  # /predict calls refused with 422


@pytest.fixture
def binaries() -> tuple[str, str]:
    """Paths of prometheus and promtool (asked first: no server starts if they are missing)."""
    return require_binary("prometheus"), require_binary("promtool")


@pytest.fixture
def service(
    binaries: tuple[str, str], settings: Settings, trained_bundle: ModelBundle
) -> Iterator[str]:
    """``python -m driftline serve`` on a free loopback port with a registered champion."""
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    with serve_subprocess(settings.home) as url:
        yield url


def _traffic(url: str, first: int, n: int, invalid: int) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        for i in range(first, first + n):
            r = client.post("/predict", json={"features": row(i), "request_id": f"p-{i}"})
            assert r.status_code == 200, r.text
        for i in range(invalid):
            r = client.post("/predict", json={"features": {"no_such_feature": i}})
            assert r.status_code == 422


def _value(result: list[dict[str, object]]) -> float:
    assert len(result) == 1, result
    sample = result[0]["value"]
    assert isinstance(sample, list)
    return float(sample[1])


@pytest.mark.slow
def test_prometheus_scrapes_the_service_and_promtool_accepts_its_metrics(
    binaries: tuple[str, str], service: str, tmp_path: Path
) -> None:
    prometheus, promtool = binaries
    target = service.removeprefix("http://")
    rules = DEPLOY / "prometheus" / "alerts.yml"
    with PrometheusServer(prometheus, tmp_path, [target], rule_files=[rules]) as prom:
        prom.wait_for('up{job="driftline"}', lambda r: bool(r) and _value(r) == 1)
        # Two bursts a couple of scrapes apart, so rate() sees the counters move.
        _traffic(service, 0, PREDICTIONS // 2, INVALID // 2)
        time.sleep(2.2)
        _traffic(service, PREDICTIONS // 2, PREDICTIONS // 2, INVALID // 2)

        text = httpx.get(f"{service}/metrics", timeout=5).content
        run_promtool(promtool, "check", "metrics", stdin=text)

        ok = 'driftline_http_requests_total{job="driftline", endpoint="/predict", status="200"}'
        prom.wait_for(ok, lambda r: bool(r) and _value(r) == PREDICTIONS)
        bad = 'sum(driftline_http_requests_total{endpoint="/predict", status="422"})'
        assert _value(prom.query(bad)) == INVALID
        served = "sum(driftline_predictions_total)"
        assert _value(prom.query(served)) == PREDICTIONS

        assert _value(prom.query('driftline_model_version{alias="champion"}')) == 1
        assert _value(prom.query("driftline_model_loaded")) == 1
        info = prom.query("driftline_model_info")
        assert [r["metric"]["version"] for r in info] == ["1"]

        # A quantile over everything observed, and one over the recent rate.
        p99_all = _value(
            prom.query(
                "histogram_quantile(0.99, sum by (le) "
                '(driftline_http_request_duration_seconds_bucket{endpoint="/predict"}))'
            )
        )
        assert 0 < p99_all < 5
        p99_rate = _value(
            prom.query(
                "histogram_quantile(0.99, sum by (le) "
                "(rate(driftline_prediction_latency_seconds_bucket[30s])))"
            )
        )
        assert math.isfinite(p99_rate) and 0 < p99_rate < 5
        confidence = _value(
            prom.query(
                "sum(driftline_prediction_confidence_sum)"
                " / sum(driftline_prediction_confidence_count)"
            )
        )
        assert 0.5 <= confidence <= 1

        # The dashboard's serving panels show data from a live service (the monitoring and loop
        # panels stay empty until a monitor report exists).
        queries = panel_queries()
        assert {title for title, _ in queries} >= LIVE_PANELS
        empty = [
            (title, expr)
            for title, expr in queries
            if title in LIVE_PANELS and not prom.query(substitute_variables(expr))
        ]
        assert not empty

        # Every rule of deploy/prometheus/alerts.yml evaluates against real data without error.
        def all_evaluated(groups: list[dict[str, object]]) -> bool:
            rules = [rule for g in groups for rule in g["rules"]]  # type: ignore[attr-defined]
            return bool(rules) and all(r["lastEvaluation"][:4] != "0001" for r in rules)

        deadline = time.monotonic() + 10
        groups = prom.api("rules")["groups"]
        while not all_evaluated(groups) and time.monotonic() < deadline:
            time.sleep(0.25)
            groups = prom.api("rules")["groups"]
        assert all_evaluated(groups), groups
        unhealthy = {
            r["name"]: r.get("lastError") for g in groups for r in g["rules"] if r["health"] != "ok"
        }
        assert not unhealthy
        # A healthy service with a champion trips none of the serving alerts, not even pending.
        active = {r["name"] for g in groups for r in g["rules"] if r["state"] != "inactive"}
        serving = {"DriftlineNoChampion", "DriftlineTargetDown", "DriftlineHighErrorRate"}
        assert not active & serving, active


def _populated_metrics() -> ServiceMetrics:
    """A ServiceMetrics with at least one sample in every family."""
    metrics = ServiceMetrics()
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        names = metric._labelnames  # no public accessor in prometheus_client
        child = metric.labels(*[f"v{i}" for i in range(len(names))]) if names else metric
        if isinstance(metric, Counter):
            child.inc()
        elif isinstance(metric, Gauge):
            child.set(1)
        elif isinstance(metric, Histogram):
            child.observe(0.7)
    return metrics


def test_promtool_accepts_every_family_with_samples() -> None:
    """/metrics of a fresh service has no monitoring or loop samples yet; lint them too."""
    promtool = require_binary("promtool")
    metrics = _populated_metrics()
    text = metrics.render()
    typed = [line.split()[2] for line in text.decode().splitlines() if line.startswith("# TYPE")]
    families = {family_name(name) for name in typed if not name.endswith("_created")}
    assert families == set(metrics.describe())
    run_promtool(promtool, "check", "metrics", stdin=text)
