"""deploy/prometheus: the alert rules are valid, each is unit-tested by promtool on series that
fire it and series that must not, and every metric they read is one the service exports.

The promtool tests skip without the binary on a laptop and fail without it when CI is set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promtools import (
    DEPLOY,
    require_binary,
    run_promtool,
    series_names,
    unknown_series,
)

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))

# Series that Prometheus itself writes, not driftline.
PROMETHEUS_OWN = {"up"}
# Rules that fire on an event (a counter's increase) and so need no `for:`.
EVENT_RULES = {"DriftlineRollback"}

REQUIRED = {  # the signals the rules must cover, by alert name
    "DriftlineFeatureDriftCritical",
    "DriftlineFeatureDriftWarning",
    "DriftlinePredictionDriftWarning",
    "DriftlinePredictionDriftCritical",
    "DriftlineReportStale",
    "DriftlineDataQualityHardFailure",
    "DriftlineHighMissingRate",
    "DriftlineHighErrorRate",
    "DriftlineHighLatencyP99",
    "DriftlineLowConfidence",
    "DriftlineNoChampion",
    "DriftlineEstimatedAccuracyDrop",
    "DriftlineRollback",
    "DriftlinePredictionsStopped",
    "DriftlineTrafficDrop",
    "DriftlineRealizedAccuracyLow",
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load(ALERTS)["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool")
    output = run_promtool(promtool, "check", "rules", str(ALERTS))
    assert f"SUCCESS: {len(_rules())} rules found" in output


def test_promtool_check_example_config() -> None:
    promtool = require_binary("promtool")
    output = run_promtool(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "SUCCESS" in output


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_promtool_rule_unit_tests(path: Path) -> None:
    promtool = require_binary("promtool")
    output = run_promtool(promtool, "test", "rules", str(path))
    assert "SUCCESS" in output


def test_rules_cover_the_required_signals() -> None:
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED, REQUIRED - set(names)


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_rule_has_severity_annotations_and_for(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Driftline")
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description"}
    assert all(annotations[key].strip() for key in ("summary", "description"))
    if rule["alert"] not in EVENT_RULES:
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "needs a `for:` duration"
    if "keep_firing_for" in rule:
        assert re.fullmatch(r"\d+[smh]", str(rule["keep_firing_for"]))


def test_every_rule_is_tested_firing_and_quiet() -> None:
    """Each alert has at least one promtool case where it fires and one where it must not."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        spec = _load(path)
        assert spec["rule_files"] == ["../alerts.yml"], path
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _rules()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_metric_in_the_rules_is_exported() -> None:
    referenced: dict[str, set[str]] = {}
    for rule in _rules():
        for name in series_names(rule["expr"]):
            referenced.setdefault(name, set()).add(rule["alert"])
    assert not unknown_series(referenced, PROMETHEUS_OWN), {
        name: (why, sorted(referenced[name]))
        for name, why in unknown_series(referenced, PROMETHEUS_OWN).items()
    }
    assert len(referenced) > 10  # the parser found the metrics, not nothing


def test_rule_unit_tests_feed_exported_series() -> None:
    """The input series of the promtool tests are named as the service names them."""
    names = {
        series["series"].split("{", 1)[0].strip()
        for path in RULE_TESTS
        for case in _load(path)["tests"]
        for series in case["input_series"]
    }
    assert not unknown_series(names, PROMETHEUS_OWN)
