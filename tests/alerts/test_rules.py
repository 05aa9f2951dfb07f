"""The built-in rules, fed snapshots scraped from the service's own metric registry (so a
renamed metric breaks these tests) or written as exposition text, and checked against
deploy/prometheus/alerts.yml."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from driftline.alerts import (
    ALERT_NAMES,
    DEFAULT_DURATIONS,
    Alert,
    AlertThresholds,
    MetricHistory,
    MetricSnapshot,
    builtin_rules,
    evaluate_rules,
)
from driftline.errors import ConfigurationError
from driftline.service.metrics import ServiceMetrics

NOW = 1_700_000_000.0
ALERTS_YML = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def healthy() -> ServiceMetrics:
    metrics = ServiceMetrics()
    metrics.set_model("champion", 3, "sklearn")
    metrics.last_report.set(NOW - 60)
    return metrics


def scrape(metrics: ServiceMetrics) -> MetricSnapshot:
    return MetricSnapshot.from_exposition(generate_latest(metrics.registry).decode())


def fired(
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None = None,
    thresholds: AlertThresholds | None = None,
) -> list[tuple[str, dict[str, str]]]:
    alerts = evaluate_rules(snapshot, now=NOW, previous=previous, rules=builtin_rules(thresholds))
    return [(a.name, a.labels) for a in alerts]


def only(snapshot: MetricSnapshot, previous: MetricSnapshot | None = None) -> Alert:
    (alert,) = evaluate_rules(snapshot, now=NOW, previous=previous)
    return alert


def test_a_healthy_service_fires_nothing() -> None:
    snap = scrape(healthy())
    assert fired(snap) == []
    assert fired(snap, previous=snap) == []


def test_a_fresh_service_has_no_champion() -> None:
    alert = only(scrape(ServiceMetrics()))
    assert (alert.name, alert.severity, alert.summary) == (
        "DriftlineNoChampion",
        "critical",
        "No champion model is loaded",
    )


def test_feature_drift_by_severity() -> None:
    m = healthy()
    for feature, severity in (("age", 2), ("income", 1), ("zip", 0), ("city", -1)):
        m.feature_drift_severity.labels(feature=feature).set(severity)
    alerts = evaluate_rules(scrape(m), now=NOW)
    assert [(a.name, a.severity, a.labels) for a in alerts] == [
        ("DriftlineFeatureDriftCritical", "critical", {"feature": "age"}),
        ("DriftlineFeatureDriftWarning", "warning", {"feature": "income"}),
    ]
    assert alerts[0].summary == "Feature age drifted (critical)"


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (-1, []),
        (0, []),
        (1, [("DriftlinePredictionDriftWarning", {})]),
        (2, [("DriftlinePredictionDriftCritical", {})]),
    ],
)
def test_prediction_drift(severity: int, expected: list[tuple[str, dict[str, str]]]) -> None:
    m = healthy()
    m.prediction_drift_severity.set(severity)
    assert fired(scrape(m)) == expected


@pytest.mark.parametrize(("age", "fires"), [(4000.0, True), (3000.0, False)])
def test_report_stale(age: float, fires: bool) -> None:
    m = healthy()
    m.last_report.set(NOW - age)
    assert fired(scrape(m)) == ([("DriftlineReportStale", {})] if fires else [])
    if fires:
        alert = only(scrape(m))
        assert alert.value == age and alert.summary == "No monitor report for 4000 s"


def test_no_report_yet_is_not_stale_and_staleness_needs_a_clock() -> None:
    m = healthy()
    m.last_report.set(0)
    assert fired(scrape(m)) == []
    m.last_report.set(NOW - 10_000)
    (rule,) = [r for r in builtin_rules() if r.name == "DriftlineReportStale"]
    assert rule.evaluate(scrape(m)) == []  # now=None
    assert len(rule.evaluate(scrape(m), now=NOW)) == 1


def test_quality_hard_failures_per_check() -> None:
    m = healthy()
    m.quality_failures.labels(check="out_of_range", severity="hard").set(2)
    m.quality_failures.labels(check="missing_rate", severity="soft").set(3)
    m.quality_failures.labels(check="unseen_category", severity="hard").set(0)
    alert = only(scrape(m))
    assert (alert.name, alert.labels, alert.value) == (
        "DriftlineDataQualityHardFailure",
        {"check": "out_of_range"},
        2.0,
    )
    assert alert.severity == "critical"


def test_high_missing_rate() -> None:
    m = healthy()
    m.feature_missing_rate.labels(feature="income").set(0.4)
    m.feature_missing_rate.labels(feature="age").set(0.25)
    alert = only(scrape(m))
    assert (alert.name, alert.labels) == ("DriftlineHighMissingRate", {"feature": "income"})
    assert alert.summary == "Feature income is missing in 40.0% of requests"
    assert fired(scrape(m), thresholds=AlertThresholds(missing_rate=0.5)) == []


def _requests(m: ServiceMetrics, endpoint: str, status: str, n: int) -> None:
    m.http_requests.labels(endpoint=endpoint, method="POST", status=status).inc(n)


def test_error_rate_compares_with_the_previous_snapshot() -> None:
    m = healthy()
    _requests(m, "/predict", "200", 1000)  # history before the window
    _requests(m, "/predict", "500", 200)
    before = scrape(m)
    assert fired(before) == []  # no previous snapshot: no rate
    _requests(m, "/predict", "200", 90)
    _requests(m, "/predict", "503", 10)
    _requests(m, "/ready", "503", 500)  # probes do not count
    alert = only(scrape(m), previous=before)
    assert alert.name == "DriftlineHighErrorRate"
    assert alert.value == pytest.approx(0.10)
    assert alert.summary == "10.0% of requests failed with 5xx"

    quiet = scrape(m)
    _requests(m, "/predict", "200", 97)
    _requests(m, "/predict", "500", 3)
    assert fired(scrape(m), previous=quiet) == []


def test_error_rate_needs_enough_requests_and_survives_a_counter_reset() -> None:
    m = healthy()
    _requests(m, "/predict", "500", 5)
    assert fired(scrape(m), previous=scrape(healthy())) == []  # 5 < min_requests
    restarted = healthy()  # counters start again from zero
    _requests(restarted, "/predict", "500", 30)
    big = healthy()
    _requests(big, "/predict", "500", 1000)
    assert fired(scrape(restarted), previous=scrape(big)) == [("DriftlineHighErrorRate", {})]


def test_latency_p99_of_predict() -> None:
    m = healthy()
    before = scrape(m)
    for _ in range(95):
        m.http_duration.labels(endpoint="/predict").observe(0.004)
    for _ in range(5):
        m.http_duration.labels(endpoint="/predict").observe(0.9)
    for _ in range(100):
        m.http_duration.labels(endpoint="/metrics").observe(0.001)  # other endpoints ignored
    alert = only(scrape(m), previous=before)
    assert alert.name == "DriftlineHighLatencyP99"
    assert 0.5 < (alert.value or 0) <= 1.0

    fast = healthy()
    before = scrape(fast)
    for _ in range(100):
        fast.http_duration.labels(endpoint="/predict").observe(0.004)
    for _ in range(100):
        fast.http_duration.labels(endpoint="/docs").observe(3.0)
    assert fired(scrape(fast), previous=before) == []


def test_low_confidence() -> None:
    m = healthy()
    for _ in range(500):
        m.confidence.observe(0.95)
    before = scrape(m)
    for _ in range(40):
        m.confidence.observe(0.55)
    alert = only(scrape(m), previous=before)
    assert alert.name == "DriftlineLowConfidence"
    assert alert.value == pytest.approx(0.55)

    few = scrape(m)
    for _ in range(5):
        m.confidence.observe(0.5)
    assert fired(scrape(m), previous=few) == []  # fewer than min_predictions


def test_estimated_accuracy_drop() -> None:
    m = healthy()
    m.reference_accuracy.set(0.90)
    m.estimated_accuracy.labels(bound="estimate").set(0.88)
    assert fired(scrape(m)) == []
    m.estimated_accuracy.labels(bound="estimate").set(0.80)
    alert = only(scrape(m))
    assert alert.name == "DriftlineEstimatedAccuracyDrop"
    assert alert.value == pytest.approx(0.10)


def test_rollback_fires_on_the_evaluation_that_sees_it() -> None:
    m = healthy()
    first = scrape(m)
    m.rollbacks.labels(actor="slo_guard").inc()
    assert fired(scrape(m)) == []  # no previous snapshot
    seen = scrape(m)
    alert = only(seen, previous=first)
    assert (alert.name, alert.labels, alert.summary) == (
        "DriftlineRollback",
        {"actor": "slo_guard"},
        "The champion was rolled back (by slo_guard)",
    )
    assert fired(scrape(m), previous=seen) == []


def test_rules_read_plain_exposition_text() -> None:
    text = """
# HELP driftline_feature_drift_severity Drift verdict per feature.
# TYPE driftline_feature_drift_severity gauge
driftline_feature_drift_severity{feature="age"} 2.0
driftline_feature_drift_severity{feature="income"} 0.0
# TYPE driftline_model_loaded gauge
driftline_model_loaded 1.0
# TYPE driftline_feature_missing_rate gauge
driftline_feature_missing_rate{feature="income"} NaN
# TYPE driftline_quality_check_failures gauge
driftline_quality_check_failures{check="constant",severity="hard"} 1.0
"""
    assert fired(MetricSnapshot.from_exposition(text)) == [
        ("DriftlineFeatureDriftCritical", {"feature": "age"}),
        ("DriftlineDataQualityHardFailure", {"check": "constant"}),
    ]


def test_thresholds_are_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"min_requests must be in \[1, inf\], got 0"):
        AlertThresholds(min_requests=0)
    with pytest.raises(
        ConfigurationError, match=r"report_stale_seconds must be in \(0.0, inf\], got -5"
    ):
        AlertThresholds(report_stale_seconds=-5)
    with pytest.raises(ConfigurationError, match="min_confidence"):
        AlertThresholds(min_confidence=float("nan"))


# --- the same rules as Prometheus ---------------------------------------------------------------


def _prometheus_rules() -> dict[str, dict[str, object]]:
    if not ALERTS_YML.exists():
        pytest.skip(f"{ALERTS_YML} is absent")
    doc = yaml.safe_load(ALERTS_YML.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


@pytest.mark.parametrize(
    "name",
    ALERT_NAMES,
)
def test_each_builtin_rule_is_a_prometheus_rule_with_the_same_severity(name: str) -> None:
    prometheus = _prometheus_rules()
    assert name in prometheus
    (rule,) = [r for r in builtin_rules() if r.name == name]
    labels = prometheus[name]["labels"]
    assert isinstance(labels, dict)
    assert labels["severity"] == rule.severity


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("DriftlineReportStale", "report_stale_seconds"),
        ("DriftlineHighMissingRate", "missing_rate"),
        ("DriftlineHighErrorRate", "error_rate"),
        ("DriftlineHighLatencyP99", "latency_p99_seconds"),
        ("DriftlineLowConfidence", "min_confidence"),
        ("DriftlineEstimatedAccuracyDrop", "accuracy_drop"),
    ],
)
def test_default_thresholds_are_those_of_prometheus(name: str, field: str) -> None:
    expr = str(_prometheus_rules()[name]["expr"])
    first_comparison = re.search(r"[<>]=?\s*([0-9]+(?:\.[0-9]+)?)", expr)
    assert first_comparison is not None
    assert float(first_comparison.group(1)) == getattr(AlertThresholds(), field)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("DriftlineTrafficDrop", "traffic_drop_ratio"),
        ("DriftlinePredictionsStopped", "min_predictions"),  # `== 0 and ... >= 20`
        ("DriftlineRealizedAccuracyLow", "realized_accuracy_drop"),
    ],
)
def test_default_thresholds_of_the_new_rules_are_those_of_prometheus(name: str, field: str) -> None:
    test_default_thresholds_are_those_of_prometheus(name, field)


def _seconds(text: object) -> float:
    if text is None:
        return 0.0
    found = re.fullmatch(r"(\d+)([smh])", str(text))
    assert found, text
    return int(found.group(1)) * {"s": 1, "m": 60, "h": 3600}[found.group(2)]


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_for_and_keep_firing_for_are_those_of_prometheus(name: str) -> None:
    rule = _prometheus_rules()[name]
    (builtin,) = [r for r in builtin_rules() if r.name == name]
    assert (builtin.for_seconds, builtin.keep_firing_for_seconds) == (
        _seconds(rule.get("for")),
        _seconds(rule.get("keep_firing_for")),
    )
    assert DEFAULT_DURATIONS[name] == (builtin.for_seconds, builtin.keep_firing_for_seconds)


def test_durations_are_configurable_per_rule() -> None:
    rules = builtin_rules(durations={"DriftlineHighLatencyP99": (0.0, 30.0)})
    (latency,) = [r for r in rules if r.name == "DriftlineHighLatencyP99"]
    assert (latency.for_seconds, latency.keep_firing_for_seconds) == (0.0, 30.0)
    with pytest.raises(ConfigurationError, match="rules: unknown alert 'HighLatency'"):
        builtin_rules(durations={"HighLatency": (0.0, 0.0)})


# --- what a rule cannot judge ------------------------------------------------------------------


def judge(
    name: str,
    snapshot: MetricSnapshot,
    previous: MetricSnapshot | None = None,
    history: MetricHistory | None = None,
    now: float = NOW,
) -> tuple[list[tuple[dict[str, str], float | None]], list[float | None], bool]:
    (rule,) = [r for r in builtin_rules() if r.name == name]
    firing, holding, known = rule.judge(snapshot, previous=previous, now=now, history=history)
    return [(a.labels, a.value) for a in firing], [a.value for a in holding], known


REPORT_RULES = [
    "DriftlineFeatureDriftCritical",
    "DriftlineFeatureDriftWarning",
    "DriftlinePredictionDriftCritical",
    "DriftlinePredictionDriftWarning",
    "DriftlineReportStale",
    "DriftlineDataQualityHardFailure",
    "DriftlineHighMissingRate",
    "DriftlineEstimatedAccuracyDrop",
    "DriftlineRealizedAccuracyLow",
]


@pytest.mark.parametrize("name", REPORT_RULES)
def test_report_rules_cannot_judge_before_a_report_is_exported(name: str) -> None:
    """What a restarted server looks like until it re-exports the latest report: the gauges
    are empty or zero. That is not a recovery: the rules say they cannot judge."""
    m = ServiceMetrics()
    m.set_model("champion", 1, "sklearn")
    assert judge(name, scrape(m)) == ([], [], False)


@pytest.mark.parametrize(
    "name", ["DriftlineHighErrorRate", "DriftlineHighLatencyP99", "DriftlineLowConfidence"]
)
def test_rate_rules_cannot_judge_without_an_earlier_snapshot_or_enough_requests(
    name: str,
) -> None:
    m = healthy()
    assert judge(name, scrape(m))[2] is False  # no earlier snapshot
    before = scrape(m)
    _requests(m, "/predict", "500", 5)
    observe = m.http_duration.labels(endpoint="/predict").observe
    for _ in range(5):
        observe(3.0)
        m.confidence.observe(0.5)
    assert judge(name, scrape(m), previous=before)[2] is False  # 5 of the 20 needed


def test_the_resolve_thresholds_hold_a_firing_alert() -> None:
    m = healthy()
    before = scrape(m)
    for _ in range(100):
        m.confidence.observe(0.68)  # between 0.65 (fires below) and 0.70 (resolves above)
    assert judge("DriftlineLowConfidence", scrape(m), previous=before) == (
        [],
        [pytest.approx(0.68)],
        True,
    )
    m = healthy()
    m.feature_missing_rate.labels(feature="income").set(0.22)  # in [0.2, 0.25]
    m.reference_accuracy.set(0.9)
    m.estimated_accuracy.labels(bound="estimate").set(0.86)  # drop 0.04 in [0.03, 0.05]
    assert judge("DriftlineHighMissingRate", scrape(m)) == ([], [0.22], True)
    assert judge("DriftlineEstimatedAccuracyDrop", scrape(m)) == (
        [],
        [pytest.approx(0.04)],
        True,
    )


def test_resolve_thresholds_must_lie_on_the_clear_side() -> None:
    with pytest.raises(ConfigurationError, match="min_confidence_resolve must be at least"):
        AlertThresholds(min_confidence_resolve=0.6)
    with pytest.raises(ConfigurationError, match="error_rate_resolve must be at most"):
        AlertThresholds(error_rate_resolve=0.06)
    assert AlertThresholds(latency_p99_resolve_seconds=0.5).latency_p99_resolve_seconds == 0.5


# --- realized accuracy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("realized", "labeled", "expected"),
    [
        (0.78, 200, ([({}, pytest.approx(0.12))], [], True)),
        (0.78, 49, ([], [], False)),  # fewer than min_labels (50)
        (0.86, 200, ([], [pytest.approx(0.04)], True)),  # in the band
        (0.89, 200, ([], [], True)),
    ],
)
def test_realized_accuracy_low(realized: float, labeled: int, expected: object) -> None:
    m = healthy()
    m.reference_accuracy.set(0.90)
    m.realized_performance.labels(metric="accuracy").set(realized)
    m.realized_labeled.set(labeled)
    assert judge("DriftlineRealizedAccuracyLow", scrape(m)) == expected
    alerts = evaluate_rules(scrape(m), now=NOW)
    if expected == ([({}, pytest.approx(0.12))], [], True):
        (alert,) = alerts
        assert alert.severity == "critical"
        assert alert.summary == "Accuracy on labels is 0.120 below the reference"


def test_realized_labeled_predictions_come_from_the_report() -> None:
    from driftline.monitoring.exporter import export_report

    m = ServiceMetrics()
    export_report(m, {"ts": NOW, "performance": {"realized": {"accuracy": 0.8, "n": 321}}})
    assert m.registry.get_sample_value("driftline_realized_labeled_predictions") == 321
    export_report(m, {"ts": NOW, "performance": {"realized": None}})
    assert m.registry.get_sample_value("driftline_realized_labeled_predictions") == 0


# --- traffic -----------------------------------------------------------------------------------


def traffic(per_minute: list[int]) -> tuple[MetricSnapshot, MetricHistory, float]:
    """Snapshots a minute apart with ``per_minute[i]`` predictions in minute i; returns the
    last, the history before it and its time."""
    m = healthy()
    counter = m.predictions.labels(variant="champion", predicted_class="0")
    items = [(NOW, scrape(m))]
    for i, n in enumerate(per_minute, start=1):
        counter.inc(n)
        items.append((NOW + 60 * i, scrape(m)))
    now, last = items[-1]
    return last, MetricHistory(items[:-1]), now


def test_predictions_stopped() -> None:
    snap, history, now = traffic([100] * 30 + [0] * 10)
    assert judge("DriftlinePredictionsStopped", snap, history=history, now=now) == (
        [({}, 3000.0)],
        [],
        True,
    )
    alert = evaluate_rules(snap, now=now, history=history)
    assert [(a.name, a.summary) for a in alert] == [
        ("DriftlinePredictionsStopped", "No predictions in the last 600 s")
    ]
    snap, history, now = traffic([100] * 30 + [0] * 9 + [1])  # one prediction: not stopped
    assert judge("DriftlinePredictionsStopped", snap, history=history, now=now) == ([], [], True)
    snap, history, now = traffic([0] * 40)  # never had traffic: nothing stopped
    assert judge("DriftlinePredictionsStopped", snap, history=history, now=now) == ([], [], True)
    snap, history, now = traffic([0] * 15)  # 15 minutes of history: too short to judge
    assert judge("DriftlinePredictionsStopped", snap, history=history, now=now)[2] is False
    snap, history, now = traffic([0] * 3 + [5])  # a restart: no baseline, but traffic flows
    assert judge("DriftlinePredictionsStopped", snap, history=history, now=now) == ([], [], True)
    snap, history, now = traffic([5] + [0] * 14)  # the 5 are older than the window
    assert judge("DriftlinePredictionsStopped", snap, history=history, now=now)[2] is False
    assert judge("DriftlinePredictionsStopped", snap)[2] is False  # no history at all


def test_traffic_drop() -> None:
    snap, history, now = traffic([100] * 60 + [10] * 10)
    firing, holding, known = judge("DriftlineTrafficDrop", snap, history=history, now=now)
    assert known and holding == [] and firing == [({}, pytest.approx(0.1))]
    snap, history, now = traffic([100] * 60 + [25] * 10)  # 25 %: in the band
    assert judge("DriftlineTrafficDrop", snap, history=history, now=now) == (
        [],
        [pytest.approx(0.25)],
        True,
    )
    snap, history, now = traffic([100] * 60 + [0] * 10)  # stopped: the other rule's case
    assert judge("DriftlineTrafficDrop", snap, history=history, now=now) == ([], [], True)
    snap, history, now = traffic([1] * 60 + [0] * 9 + [1])  # 60 in the hour, 1 in 10 minutes
    firing, _, _ = judge("DriftlineTrafficDrop", snap, history=history, now=now)
    assert firing == [({}, pytest.approx(0.1))]
    snap, history, now = traffic([0] * 50 + [1] * 19 + [0])  # 19 before: fewer than 20
    assert judge("DriftlineTrafficDrop", snap, history=history, now=now)[2] is False
    snap, history, now = traffic([0] * 60 + [1] * 10)  # no traffic before: cannot compare
    assert judge("DriftlineTrafficDrop", snap, history=history, now=now)[2] is False


def test_vanished_series_go_stale_with_several_workers(tmp_path: Path) -> None:
    """With ``--workers N`` (PROMETHEUS_MULTIPROC_DIR) a series that vanished from a report,
    a replaced champion or a resolved alert must not keep its last value: prometheus_client
    cannot clear series there (it only warned), so a dropped feature stayed "critical" and
    kept its alert firing. Run in a fresh interpreter: the client picks its multi-process
    storage at import."""
    script = textwrap.dedent(
        """
        import json, math, warnings
        warnings.simplefilter("error")  # prometheus_client's "clearing labels" warning
        from prometheus_client import CollectorRegistry, multiprocess
        from prometheus_client.parser import text_string_to_metric_families
        from driftline.monitoring.exporter import export_report
        from driftline.service.metrics import ServiceMetrics

        m = ServiceMetrics()
        def feature(name, severity):
            return {"feature": name, "severity": severity, "method": "ks", "statistic": 0.3,
                    "p_adjusted": 0.001, "effect_size": 0.4, "effect_name": "w",
                    "missing_rate_current": 0.0}
        failure = {"check": "range", "severity": "critical", "passed": False}
        export_report(m, {"ts": 1.0, "data_drift": {"severity": "critical",
                      "features": [feature("a", "none"), feature("b", "critical")]},
                      "quality": {"findings": [failure]}})
        export_report(m, {"ts": 2.0, "data_drift": {"severity": "none",
                      "features": [feature("a", "warning")]}, "quality": {"findings": []}})
        m.set_model("champion", 1, "logreg")
        m.set_model("champion", 2, "hgb")
        m.alerts_firing.labels(alertname="X", severity="critical").set(1)
        m.forget(m.alerts_firing, 0.0)
        text = m.render().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = s.name + json.dumps(dict(sorted(s.labels.items())))
                out[key] = None if math.isnan(s.value) else s.value
        print(json.dumps(out))
        """
    )
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    severity = "driftline_feature_drift_severity"
    assert got[severity + '{"feature": "a"}'] == 1  # the current report's value
    assert got[severity + '{"feature": "b"}'] is None  # vanished: NaN, no rule fires on it
    assert got['driftline_quality_check_failures{"check": "range", "severity": "critical"}'] == 0
    assert got['driftline_model_info{"kind": "hgb", "version": "2"}'] == 1
    assert got['driftline_model_info{"kind": "logreg", "version": "1"}'] == 0
    assert got['driftline_alerts_firing{"alertname": "X", "severity": "critical"}'] == 0
