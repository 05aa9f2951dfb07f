"""GET /metrics/summary: traffic, latency, classes, drift and accuracy in one JSON answer."""

from __future__ import annotations

from fastapi.testclient import TestClient

from driftline.data import generate_loans
from driftline.monitoring import run_monitor
from driftline.monitoring.window import LATENCY_EDGES_MS
from driftline.store import queries
from tests.monitoring.conftest import drifted, runtime, send, settle


def test_summary_before_any_traffic(served: TestClient) -> None:
    body = served.get("/metrics/summary").json()
    assert body["window_seconds"] == 3600.0
    assert body["model_version"] == 1
    assert body["traffic"]["requests"] == 0
    assert body["traffic"]["error_rate"] is None
    assert body["traffic"]["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    assert body["drift"]["status"] is None
    assert body["accuracy"]["realized"] is None


def test_summary_counts_every_request_and_reads_the_latest_report(served: TestClient) -> None:
    rt = runtime(served)
    send(served, generate_loans(1_500, seed=21), "calm")
    send(served, drifted(1_500, seed=22), "drift")
    bad = served.post("/predict", json={"features": {"age": "old"}})
    assert bad.status_code == 422
    settle(served)
    report = run_monitor(store=rt.store, registry=rt.registry)
    body = served.get("/metrics/summary", params={"window": "15m"}).json()
    traffic = body["traffic"]
    assert body["window_seconds"] == 900.0
    assert traffic["requests"] == 3_000
    assert traffic["rejected"] == 1
    assert traffic["errors"] == 0 and traffic["error_rate"] == 0.0
    assert traffic["requests_per_second"] > 0
    p50, p95, p99 = (traffic["latency_ms"][k] for k in ("p50", "p95", "p99"))
    assert p50 <= p95 <= p99
    assert {p50, p95, p99} <= {*LATENCY_EDGES_MS}
    # The predicted classes are the logged predictions, counted.
    with rt.store.sessions() as session:
        page = queries.list_predictions(session=session, limit=5_000)
    logged: dict[str, int] = {}
    for item in page.items:
        logged[item["prediction"]] = logged.get(item["prediction"], 0) + 1
    assert traffic["predictions"]["counts"] == logged
    assert (
        sum(traffic["predictions"]["shares"].values()) == 1.0
        or abs(sum(traffic["predictions"]["shares"].values()) - 1.0) < 1e-12
    )
    drift = body["drift"]
    assert drift["report_id"] == report["id"]
    assert drift["status"] == report["status"]
    assert drift["data_drift"] == report["data_drift"]["severity"] == "critical"
    assert "income" in drift["drifted_features"]
    accuracy = body["accuracy"]
    assert accuracy["realized"] == report["performance"]["realized"]["accuracy"]
    assert accuracy["realized_n"] == 3_000
    assert accuracy["estimated"] == report["performance"]["estimated"]["accuracy"]


def test_summary_window_is_validated(served: TestClient) -> None:
    for bad in ("soon", "-5m", "30d"):
        r = served.get("/metrics/summary", params={"window": bad})
        assert r.status_code == 422, bad
        assert "window" in r.text


def test_a_report_is_its_html_page_for_a_browser_and_json_otherwise(served: TestClient) -> None:
    """The dashboard's "latest report" link opened raw JSON; a browser now gets the page."""
    rt = runtime(served)
    send(served, drifted(1_200, seed=23), "drift")
    settle(served)
    report = run_monitor(store=rt.store, registry=rt.registry)
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/reports/latest", f"/reports/{report['id']}"):
        page = served.get(path, headers=browser)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "Plotly.newPlot" in page.text and "income" in page.text
        as_json = served.get(path, headers=browser, params={"format": "json"})
        assert as_json.json()["id"] == report["id"]
        assert served.get(path).json()["status"] == report["status"]  # API clients: JSON
        forced = served.get(path, params={"format": "html"})
        assert forced.headers["content-type"].startswith("text/html")
    assert served.get("/reports/latest", params={"format": "pdf"}).status_code == 422
    assert 'href="reports/latest?format=html"' in served.get("/dashboard").text
