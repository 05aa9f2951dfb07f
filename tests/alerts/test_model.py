"""Snapshots, alerts and notifications."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.alerts import Alert, AlertEvent, MetricSnapshot, Notification, RuleSpec, fingerprint
from driftline.errors import ConfigurationError

EXPOSITION = """
# HELP driftline_http_requests_total HTTP requests.
# TYPE driftline_http_requests_total counter
driftline_http_requests_total{endpoint="/predict",method="POST",status="200"} 7.0
driftline_http_requests_total{endpoint="/predict",method="POST",status="500"} 1.0
# HELP driftline_http_request_duration_seconds Time to answer.
# TYPE driftline_http_request_duration_seconds histogram
driftline_http_request_duration_seconds_bucket{endpoint="/predict",le="0.1"} 6.0
driftline_http_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"} 8.0
driftline_http_request_duration_seconds_count{endpoint="/predict"} 8.0
driftline_http_request_duration_seconds_sum{endpoint="/predict"} 0.9
# TYPE driftline_feature_missing_rate gauge
driftline_feature_missing_rate{feature="age"} NaN
"""


def test_snapshot_keys_are_promql_sample_names() -> None:
    snap = MetricSnapshot.from_exposition(EXPOSITION)
    assert (
        snap.get("driftline_http_requests_total", endpoint="/predict", method="POST", status="500")
        == 1.0
    )
    assert snap.get("driftline_http_requests_total", status="500") is None  # exact labels
    assert [v for _, v in snap.series("driftline_http_requests_total", status="200")] == [7.0]
    assert (
        snap.get("driftline_http_request_duration_seconds_bucket", endpoint="/predict", le="+Inf")
        == 8.0
    )
    assert math.isnan(snap.get("driftline_feature_missing_rate", feature="age") or 0.0)
    assert "driftline_http_request_duration_seconds_count" in snap.names()
    assert len(snap) == 7
    key = ("driftline_http_request_duration_seconds_sum", frozenset({("endpoint", "/predict")}))
    assert snap[key] == 0.9
    assert repr(snap) == "MetricSnapshot(7 series)"


def test_snapshot_is_immutable_and_copies_its_input() -> None:
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {("up", frozenset()): 1.0}
    snap = MetricSnapshot(values)
    values[("up", frozenset())] = 0.0
    assert snap.get("up") == 1.0
    with pytest.raises(TypeError):
        snap[("up", frozenset())] = 2.0  # type: ignore[index]


def test_snapshot_from_dict_matches_exposition() -> None:
    a = MetricSnapshot.from_dict({'x_total{code="500",path="/p"}': 3, "up": 1})
    b = MetricSnapshot.from_exposition('x_total{path="/p",code="500"} 3\nup 1\n')
    assert dict(a) == dict(b)


def test_alert_fingerprint_is_stable_and_label_order_free() -> None:
    a = Alert("DriftlineHighMissingRate", "warning", {"feature": "income"}, "s", value=0.4)
    assert a.fingerprint == fingerprint("DriftlineHighMissingRate", {"feature": "income"})
    assert a.fingerprint == "07f69db2b1ef0bf9"  # the same in every process and release
    b = Alert("DriftlineHighMissingRate", "warning", {"feature": "income"}, "other", value=0.9)
    assert a.fingerprint == b.fingerprint  # summary and value are not identity
    assert Alert.from_dict(a.to_dict()) == a


@given(st.dictionaries(st.text(min_size=1), st.text(), max_size=5), st.text(min_size=1))
def test_fingerprint_depends_only_on_name_and_labels(labels: dict[str, str], name: str) -> None:
    reordered = dict(reversed(list(labels.items())))
    assert fingerprint(name, labels) == fingerprint(name, reordered)
    assert fingerprint(name, labels) != fingerprint(name + "x", labels)


def test_alert_validation() -> None:
    with pytest.raises(ConfigurationError, match="labels must not contain the reserved"):
        Alert("X", "warning", {"severity": "high"}, "s")
    with pytest.raises(ConfigurationError, match="labels must map str to str"):
        Alert("X", "warning", {"n": 1}, "s")  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        Alert("", "warning", {}, "s")


def test_alert_to_dict_drops_non_finite_values() -> None:
    assert Alert("X", "warning", {}, "s", value=math.inf).to_dict()["value"] is None


def test_notification_views() -> None:
    w = Alert("DriftlineFeatureDriftWarning", "warning", {"feature": "age"}, "s")
    c = Alert("DriftlineFeatureDriftCritical", "critical", {"feature": "age"}, "s")
    n = Notification(
        "repeat", "g", {}, (AlertEvent(w, "firing", 0.0), AlertEvent(c, "firing", 1.0)), 2.0
    )
    assert n.status == "firing"
    assert n.severity == "critical"
    assert n.common_labels == {"feature": "age"}
    assert n.title == "[FIRING:2] DriftlineFeatureDriftCritical, DriftlineFeatureDriftWarning"


def test_rule_templates_fill_labels_and_value() -> None:
    rule = RuleSpec(
        "DriftlineHighMissingRate",
        "warning",
        "{feature} missing in {value:.0%} ({unknown})",
        condition=lambda snap, prev, now: [({"feature": "age"}, 0.5)],
        description="value {value:g}",
    )
    (alert,) = rule.evaluate(MetricSnapshot())
    assert alert.summary == "age missing in 50% (?)"
    assert alert.description == "value 0.5"
    with pytest.raises(ConfigurationError, match="severity must be one of"):
        RuleSpec("X", "page", "s", condition=lambda s, p, n: [])  # type: ignore[arg-type]
