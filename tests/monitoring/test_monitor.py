"""The monitor end to end: traffic through the API, buckets in the store, a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from driftline.cli import app as cli
from driftline.data import generate_loans
from driftline.monitoring import run_monitor, update_concept
from driftline.monitoring.concept import concept_status
from driftline.monitoring.html import render_report_html
from driftline.store import queries
from tests.monitoring.conftest import drifted, runtime, send, settle


def test_no_drift_on_fresh_traffic_and_insufficient_data_when_quiet(served: TestClient) -> None:
    rt = runtime(served)
    quiet = run_monitor(store=rt.store, registry=rt.registry, persist=False)
    assert quiet["data_drift"]["severity"] == "insufficient_data"
    assert quiet["status"] == "insufficient_data"
    send(served, generate_loans(3_000, seed=20), "calm")
    settle(served)
    body = run_monitor(store=rt.store, registry=rt.registry)
    assert body["rows"] == 3_000 and body["data_drift"]["severity"] == "none"
    assert body["prediction_drift"]["severity"] == "none"
    assert body["quality"]["severity"] == "none"
    realized = body["performance"]["realized"]["accuracy"]
    estimated = body["performance"]["estimated"]
    assert abs(estimated["accuracy"] - realized) < 0.03  # CBPE tracks reality without drift
    # The workers' buckets kept row samples (merged: the default 2,000 of the 3,000 rows), so
    # the doubly robust estimator ran (its weights trusted: the traffic is the reference's),
    # and the report says which number it kept and why.
    perf = body["performance"]
    assert perf["estimator_detail"]["window_sample_rows"] == 2_000
    assert perf["estimator_detail"]["effective_sample_size"] >= 200
    assert perf["estimator"] in ("cbpe", "doubly_robust")
    assert "standard errors" in perf["estimator_reason"]
    assert body["status"] == "ok"


def test_drift_is_detected_reported_exported_and_audited(
    served: TestClient, tmp_path: Path
) -> None:
    rt = runtime(served)
    send(served, generate_loans(2_000, seed=21), "base")
    send(served, drifted(3_000, seed=22), "shifted")
    settle(served)
    rt.jobs.concept()  # what the scheduler's leader runs every few seconds
    status = concept_status(rt.store, rt.settings.model_name, 1)
    assert status["n_seen"] == 5_000 and status["n_drifts"] == 1
    assert status["events"][0]["sample_index"] > 2_000  # after the change, not before
    body = rt.jobs.monitor()
    assert body is not None
    features = {f["feature"]: f for f in body["data_drift"]["features"]}
    assert features["income"]["severity"] == "critical"
    assert features["income"]["p_adjusted"] < 0.001
    assert all(f["severity"] == "none" for n, f in features.items() if n != "income")
    assert body["status"] == "critical"
    assert body["concept_drift"]["n_drifts"] == 1 and body["concept_drift"]["anchor_ts"]
    # the label-free estimate can't see concept drift, the labels can:
    perf = body["performance"]
    assert perf["realized"]["accuracy"] < perf["estimated"]["accuracy_lower"]
    metrics = served.get("/metrics").text
    assert 'driftline_feature_drift_severity{feature="income"} 2.0' in metrics
    assert "driftline_concept_drift_alarms_total 1.0" in metrics
    assert 'driftline_drift_alarms_total{kind="data",severity="critical"} 1.0' in metrics
    latest = served.get("/reports/latest").json()
    assert latest["id"] == body["id"] and latest["status"] == "critical"
    listing = served.get("/reports").json()["items"]
    assert listing[0]["drifted_features"] == ["income"]
    assert served.get(f"/reports/{body['id']}").json()["rows"] == 5_000
    assert served.get("/reports/999").status_code == 404
    with rt.store.sessions() as session:
        kinds = {e.kind for e in queries.list_audit(session=session)}
    assert {"concept_drift", "drift_report"} <= kinds
    page = render_report_html(body, [body])
    assert "Drift over time" in page and "income" in page and "plotly" in page.lower()
    assert "https://" not in page.split("<body")[1][:2000]  # self-contained


def test_concept_state_survives_a_restart(served: TestClient) -> None:
    rt = runtime(served)
    send(served, generate_loans(1_500, seed=23), "a")
    settle(served)
    first = update_concept(rt.store, rt.settings.model_name, 1)
    assert first.new_samples == 1_500
    again = update_concept(rt.store, rt.settings.model_name, 1)  # a "new process"
    assert again.new_samples == 0  # the cursor was persisted: nothing fed twice
    status = concept_status(rt.store, rt.settings.model_name, 1)
    assert status["n_seen"] == 1_500


def test_schema_violations_reach_the_quality_report(served: TestClient) -> None:
    rt = runtime(served)
    send(served, generate_loans(400, seed=24), "ok", labels=False)
    for _ in range(60):
        served.post("/predict", json={"features": {"age": "old"}})
    settle(served)
    body = run_monitor(store=rt.store, registry=rt.registry, persist=False)
    assert body["rejected"] == 60
    failed = {f["check"] for f in body["quality"]["findings"] if not f["passed"]}
    assert any("reject" in c or "schema" in c for c in failed), failed


def test_check_and_report_commands(served: TestClient, tmp_path: Path) -> None:
    rt = runtime(served)
    send(served, drifted(2_500, seed=25), "x")
    settle(served)
    home = str(rt.settings.home)
    result = CliRunner().invoke(cli, ["--home", home, "check", "--window", "1h"])
    assert result.exit_code == 3, result.output  # critical
    text = " ".join(result.output.split())
    assert "Data drift" in text and "income" in text and "Concept drift" in text
    # The real CLI names the estimator of the accuracy row, and why it was used.
    assert "accuracy estimated by " in text
    assert "accuracy (doubly robust)" in text or "accuracy (CBPE)" in text
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["--home", home, "report", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 100_000 and "Estimated vs realized accuracy" in out.read_text()
    bad = CliRunner().invoke(cli, ["--home", home, "check", "--window", "soon"])
    assert bad.exit_code == 1 and "--window must be a duration" in bad.output


@pytest.mark.postgres
def test_monitor_on_postgres(pg_url: str, settings: Any, loan_bundle: Any) -> None:
    from driftline.registry import Registry
    from driftline.service import create_app
    from driftline.store import open_store

    pg_settings = settings.model_copy(update={"database_url": pg_url, "scheduler": False})
    store = open_store(pg_url)
    Registry.from_settings(pg_settings, store).register(loan_bundle, actor="test")
    with TestClient(create_app(pg_settings, store=store)) as client:
        send(client, drifted(2_000, seed=26), "pg")
        settle(client)
        body = runtime(client).jobs.monitor()
        assert body is not None and body["status"] == "critical"
        assert client.get("/reports/latest").json()["id"] == body["id"]
    store.dispose()


def test_reported_statistics_reach_the_report(served: TestClient) -> None:
    from driftline.config import Settings
    from driftline.drift import DriftPolicy
    from driftline.monitoring.monitor import MonitorOptions

    rt = runtime(served)
    send(served, drifted(3_000, seed=31), "shifted")
    settle(served)
    settings = Settings(database_url="sqlite://", drift_statistics=" ks, chi_square,psi ")
    assert settings.drift_report == ("ks", "chi_square", "psi")
    options = MonitorOptions(drift=DriftPolicy(report=settings.drift_report))
    body = run_monitor(store=rt.store, registry=rt.registry, options=options, persist=False)
    plain = run_monitor(store=rt.store, registry=rt.registry, persist=False)
    features = {f["feature"]: f for f in body["data_drift"]["features"]}
    income = features["income"]
    assert [s["method"] for s in income["statistics"]] == ["ks", "chi_square", "psi"]
    assert income["statistics"][2]["statistic"] > 0.1  # the shifted feature: PSI is large
    assert all(f["statistics"] == [] for f in plain["data_drift"]["features"])
    assert [f["severity"] for f in plain["data_drift"]["features"]] == [
        f["severity"] for f in body["data_drift"]["features"]
    ]


def test_drift_statistics_setting_validates() -> None:
    from pydantic import ValidationError

    from driftline.config import Settings

    with pytest.raises(ValidationError, match="drift_statistics entries must be among"):
        Settings(database_url="sqlite://", drift_statistics="psi,hellinger")
    assert Settings(database_url="sqlite://").drift_report == ()
