"""deploy/grafana: the dashboard reads only metrics the service exports, covers the signals it
promises, lays out cleanly, and every query parses in a real Prometheus; the provisioning files
and deploy/compose.yaml agree on where things are.

No Grafana runs here, so the dashboard is checked as data, not rendered. The PromQL parse test
needs the ``prometheus`` binary (skips without it on a laptop, fails without it under CI)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml

from tests.deploy.deploytools import (
    DASHBOARD,
    GRAFANA,
    all_panels,
    load_dashboard,
    substitute_variables,
)
from tests.support.promtools import (
    DEPLOY,
    PrometheusServer,
    family_name,
    require_binary,
    series_names,
    unknown_series,
)

DATASOURCE_UID = "driftline-prometheus"



def dashboard_queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard (panels, annotations, variables), keyed by
    where it is."""
    board = load_dashboard()
    out: dict[str, str] = {}
    for panel in all_panels(board["panels"]):
        for target in panel.get("targets", []):
            out[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for note in board["annotations"]["list"]:
        if "expr" in note:
            out[f"annotation {note['name']!r}"] = note["expr"]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"]["query"])
            assert match, var["query"]
            out[f"variable {var['name']}"] = match.group(1)
    return out


def test_every_metric_on_the_dashboard_is_exported() -> None:
    referenced: dict[str, set[str]] = {}
    for where, expr in dashboard_queries().items():
        names = series_names(expr)
        assert names, f"{where}: no metric in {expr}"
        for name in names:
            referenced.setdefault(name, set()).add(where)
    problems = unknown_series(referenced)
    assert not problems, {name: (why, sorted(referenced[name])) for name, why in problems.items()}


def test_dashboard_covers_the_promised_signals() -> None:
    families = {family_name(n) for expr in dashboard_queries().values() for n in series_names(expr)}
    promised = {
        "traffic and errors": "driftline_http_requests",
        "latency": "driftline_http_request_duration_seconds",
        "model latency": "driftline_prediction_latency_seconds",
        "predictions by class": "driftline_predictions",
        "confidence": "driftline_prediction_confidence",
        "drift statistic": "driftline_feature_drift_statistic",
        "drift effect size": "driftline_feature_drift_effect_size",
        "drift severity": "driftline_feature_drift_severity",
        "prediction drift": "driftline_prediction_drift_severity",
        "quality failures": "driftline_quality_check_failures",
        "estimated accuracy": "driftline_estimated_accuracy",
        "realized accuracy": "driftline_realized_performance",
        "reference accuracy": "driftline_reference_accuracy",
        "versions per alias": "driftline_model_version",
        "retrains": "driftline_retrains",
        "gate decisions": "driftline_gate_decisions",
        "promotions": "driftline_promotions",
        "rollbacks": "driftline_rollbacks",
        "canary share": "driftline_canary_share",
        "rollout stage": "driftline_rollout_stage",
    }
    missing = {what: name for what, name in promised.items() if name not in families}
    assert not missing
    exprs = " ".join(dashboard_queries().values())
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(driftline_http_request_" in exprs


def test_panels_are_well_formed_and_do_not_overlap() -> None:
    board = load_dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    panels = list(all_panels(board["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["expr"].strip()
    refs = [[t["refId"] for t in p.get("targets", [])] for p in panels]
    assert all(len(r) == len(set(r)) for r in refs), "duplicate refId in a panel"


def test_provisioning_and_compose_agree() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == DATASOURCE_UID
    assert source["isDefault"] is True  # the dashboard's $datasource variable starts on it
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/driftline.yml").read_text())
    (provider,) = providers["providers"]
    dashboards_path = provider["options"]["path"]

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = {}
    for volume in compose["services"]["grafana"]["volumes"]:
        host, container = volume.split(":")[:2]
        mounts[container] = host
    assert (DEPLOY / mounts[dashboards_path]).resolve() == DASHBOARD.parent
    provisioning = {c: h for c, h in mounts.items() if c.startswith("/etc/grafana/provisioning")}
    for host in provisioning.values():
        assert (DEPLOY / host).is_dir(), host
    assert {Path(c).name for c in provisioning} == {"datasources", "dashboards"}
    prom = compose["services"]["prometheus"]
    config_mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"] if v.startswith(".")}
    for host in config_mounts.values():
        assert (DEPLOY / host).is_file(), host


def test_every_query_parses_in_prometheus(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    with PrometheusServer(prometheus, tmp_path, []) as prom:
        errors = {}
        for where, expr in dashboard_queries().items():
            r = httpx.get(
                f"{prom.url}/api/v1/query", params={"query": substitute_variables(expr)}, timeout=5
            )
            if r.json().get("status") != "success":
                errors[where] = (expr, r.json().get("error"))
        assert not errors
