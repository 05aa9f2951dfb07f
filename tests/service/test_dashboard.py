"""The live dashboard: the page and its assets over plain ASGI, the state it starts from, and the
real page in headless Chromium against a real server (loads without console errors, shows the
champion, follows predictions and reports live; leaves a screenshot in test-artifacts/).

The browser test needs Debian's ``chromium`` and ``chromium-driver``
(``.ci/install-debian-packages``): it skips without them on a laptop and fails without them when
CI is set."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import plotly
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from driftline.config import Settings
from driftline.data.inject import inject_drift
from driftline.data.synthetic import TARGET, generate_loans
from driftline.models import ModelBundle
from driftline.registry import CHALLENGER, Registry
from driftline.service import create_app
from driftline.service.dashboard_page import read_rollout, traffic_state
from driftline.store import open_store, queries
from tests.support.promtools import in_ci
from tests.support.records import row
from tests.support.servers import serve_subprocess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
ADMIN = {"Authorization": "Bearer dash-token-000001"}


def _register(settings: Settings, bundle: ModelBundle, *, challenger: bool = False) -> None:
    store = open_store(settings.database_url)
    registry = Registry.from_settings(settings, store)
    registry.register(bundle, actor="test")
    if challenger:
        version = registry.register(bundle, actor="test", reason="a candidate")
        registry.set_alias(CHALLENGER, version, actor="test", reason="candidate")
    store.dispose()


# --- plain ASGI ---------------------------------------------------------------------------------


@pytest.fixture
def client(settings: Settings, trained_bundle: ModelBundle) -> Iterator[TestClient]:
    _register(settings, trained_bundle)
    # No scheduler: the reports are the ones the test runs.
    with TestClient(create_app(settings.model_copy(update={"scheduler": False}))) as c:
        yield c


def test_dashboard_page_and_every_asset_it_references_are_served(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="champion-version"' in page.text
    assert f"dashboard/plotly.min.js?v={plotly.__version__}" in page.text
    assert "cdn" not in page.text.lower()  # nothing from outside the app
    references = re.findall(r'(?:src|href)="(dashboard/[^"]+)"', page.text)
    assert len(references) == 4  # icon, style sheet, Plotly, the script
    for ref in references:
        r = client.get("/" + ref)
        assert r.status_code == 200, ref
        assert r.content, ref
    assert (
        client.get("/dashboard/assets/dashboard.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert (
        client.get("/dashboard/assets/dashboard.css").headers["content-type"].startswith("text/css")
    )
    assert client.get("/dashboard/assets/..%2F__init__.py").status_code == 404
    assert client.get("/dashboard/assets/index.html").status_code == 404


def test_plotly_js_comes_from_the_plotly_package_gzipped_and_cached(client: TestClient) -> None:
    raw = PLOTLY_JS.read_bytes()
    r = client.get("/dashboard/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == raw  # httpx decodes: the same bytes as the package's file
    assert int(r.headers["content-length"]) < len(raw) / 2
    assert "max-age" in r.headers["cache-control"]
    plain = client.get("/dashboard/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == raw
    again = client.get("/dashboard/plotly.min.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_state_has_models_classes_drift_heatmap_accuracy_and_audit(client: TestClient) -> None:
    n = 150
    frame = generate_loans(n, seed=5)
    for i, record in enumerate(_records(frame.drop(columns=[TARGET]))):
        r = client.post("/predict", json={"features": record, "request_id": f"s-{i}"})
        assert r.status_code == 200, r.text
    labels = [{"request_id": f"s-{i}", "label": int(y)} for i, y in enumerate(frame[TARGET])]
    assert client.post("/labels", json={"labels": labels}).status_code == 200
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.writer.flush(5.0)
    runtime.jobs.monitor()
    runtime.jobs.monitor()

    state = client.get("/dashboard/state").json()

    assert state["models"]["champion"]["version"] == 1
    assert state["models"]["champion"]["metrics"]["accuracy"] > 0.5
    assert state["models"]["serving_version"] == 1
    assert state["models"]["challenger"] is None
    assert sum(state["classes"]["recent"].values()) == n  # every prediction, from the store
    assert sum(state["classes"]["reference"].values()) == pytest.approx(1.0)
    heat = state["heatmap"]
    features = list(runtime.champion.schema.names)
    assert heat["features"] == features
    columns = 2
    assert len(heat["reports"]) == len(heat["ts"]) == columns
    assert heat["ts"] == sorted(heat["ts"])  # oldest first
    assert all(len(line) == columns for line in heat["z"])
    assert {v for line in heat["z"] for v in line} <= {-1, 0, 1, 2}
    assert all(line[-1] in (0, 1, 2) for line in heat["z"])  # 150 rows: every feature tested
    accuracy = state["accuracy"]
    assert len(accuracy["ts"]) == columns
    assert accuracy["realized"][-1] is not None
    assert accuracy["labeled"][-1] == n
    assert 0.5 < accuracy["estimated"][-1] <= 1.0
    assert accuracy["estimator"][-1] == "cbpe"  # the dashboard says which estimator it was
    assert accuracy["reference"] == pytest.approx(
        state["models"]["champion"]["metrics"]["accuracy"]
    )
    assert state["latest_report"]["id"] == heat["reports"][-1]
    kinds = {e["kind"] for e in state["audit"]}
    assert kinds, "the registration is in the audit log"
    assert state["alerts"] == [] or all(a["severity"] for a in state["alerts"])


def test_traffic_sums_workers_per_closed_bucket_and_leaves_out_shadow_and_open_buckets() -> None:
    def bucket(start: float, worker: str, variant: str, requests: int, latency: list[int]) -> Any:
        payload = {"requests": requests, "errors": 1, "latency": latency}
        return queries.BucketRow(worker, start, 1, variant, requests, payload)

    rows = [
        bucket(0.0, "a", "champion", 60, [0, 60]),
        bucket(0.0, "b", "champion", 30, [30, 0]),
        bucket(0.0, "a", "shadow", 90, [0, 0, 90]),
        bucket(60.0, "a", "canary", 6, [6]),
        bucket(120.0, "a", "champion", 600, [600]),  # still open at now=150
    ]
    out = traffic_state(rows, bucket_seconds=60.0, now=150.0)
    assert out["ts"] == [30.0, 90.0]
    assert out["rps"] == [1.5, 0.1]
    assert out["error_rate"] == [pytest.approx(2 / 90), pytest.approx(1 / 6)]
    assert out["p50_ms"] == [1.0, 0.5]  # upper edges of the latency bins reaching the quantile
    assert out["p95_ms"] == [1.0, 0.5]
    assert out["width_seconds"] == [60.0, 60.0]


def test_traffic_rates_use_each_bucket_width() -> None:
    """After a demo (5 s buckets), `serve` on the same home (60 s buckets) charts both rates
    right: 50 requests in a 5 s bucket are 10 req/s, not 50/60."""

    def bucket(start: float, requests: int, seconds: float | None) -> Any:
        payload: dict[str, Any] = {"requests": requests, "errors": 0, "latency": [requests]}
        if seconds is not None:
            payload["seconds"] = seconds
        return queries.BucketRow("w", start, 1, "champion", requests, payload)

    rows = [bucket(0.0, 50, 5.0), bucket(5.0, 25, 5.0), bucket(60.0, 600, 60.0)]
    out = traffic_state(rows, bucket_seconds=60.0, now=500.0)
    assert out["ts"] == [2.5, 7.5, 90.0]
    assert out["rps"] == [10.0, 5.0, 10.0]
    assert out["width_seconds"] == [5.0, 5.0, 60.0]
    legacy = traffic_state([bucket(0.0, 120, None)], bucket_seconds=60.0, now=500.0)
    assert legacy["rps"] == [2.0]  # buckets written before widths were stored


def _app_with_rollout(status: int | None, body: Any = None) -> FastAPI:
    app = FastAPI()
    if status is not None:

        @app.get("/rollout")
        def rollout() -> Any:
            if status != 200:
                raise HTTPException(status, "nothing")
            return body

    return app


def test_rollout_is_read_from_get_rollout_and_a_404_means_no_rollout() -> None:
    def read(app: FastAPI) -> dict[str, Any] | None:
        return asyncio.run(read_rollout(app))

    assert read(_app_with_rollout(None)) is None  # no such route
    assert read(_app_with_rollout(404)) is None
    body = {"stage": "canary", "champion": 1, "challenger": 2, "share": 0.1}
    assert read(_app_with_rollout(200, body)) == body
    broken = read(_app_with_rollout(500))
    assert broken is not None
    assert "500" in broken["error"]


# --- the real page in headless Chromium -------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict(orient="records")
    ]


def _chromium() -> tuple[str, str]:
    """Paths of the browser and its driver; skip without them unless CI is set."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = (
        "chromium and chromedriver not found on PATH; install the Debian packages chromium and "
        "chromium-driver (.ci/install-debian-packages)"
    )
    if in_ci():
        pytest.fail(f"{reason} (required because CI is set)")
    pytest.skip(reason)


@pytest.fixture
def chromium() -> tuple[str, str]:
    return _chromium()


@pytest.fixture
def server(
    chromium: tuple[str, str], settings: Settings, trained_bundle: ModelBundle
) -> Iterator[str]:
    """``python -m driftline serve`` on a free loopback port: a champion and a challenger."""
    _register(settings, trained_bundle, challenger=True)
    env = {
        "DRIFTLINE_ADMIN_TOKEN": "dash-token-000001",
        "DRIFTLINE_MONITOR_FLUSH_SECONDS": "1",
        # The drifted traffic would let the closed loop retrain and register v3 as the new
        # challenger whenever its job happens to run: this page is judged on v1 and v2.
        "DRIFTLINE_LOOP_ENABLED": "false",
    }
    with serve_subprocess(settings.home, env=env) as url:
        yield url


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _severe(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _traffic(url: str) -> None:
    """Normal traffic with labels and a report, then traffic with a shifted income and a
    second report: the heatmap gets a quiet column and a drifted one."""
    frame = generate_loans(400, seed=31)
    drifted = inject_drift(generate_loans(400, seed=32), "mean_shift", feature="income")
    with httpx.Client(base_url=url, timeout=30) as client:
        for part, rows in (("n", frame), ("d", drifted)):
            instances = [
                {"request_id": f"{part}-{i}", "features": r}
                for i, r in enumerate(_records(rows.drop(columns=[TARGET])))
            ]
            r = client.post("/predict/batch", json={"instances": instances})
            assert r.status_code == 200, r.text
            labels = [
                {"request_id": f"{part}-{i}", "label": int(y)} for i, y in enumerate(rows[TARGET])
            ]
            assert client.post("/labels", json={"labels": labels}).status_code == 200
            r = client.post("/reports/run", headers=ADMIN)
            assert r.status_code == 200, r.text


@pytest.mark.slow
def test_dashboard_in_headless_chromium_shows_the_champion_and_follows_live_events(
    server: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    _traffic(server)

    def text(element_id: str) -> str:
        return str(browser.find_element(By.ID, element_id).text)

    browser.get(f"{server}/dashboard")
    assert browser.title.startswith("driftline")
    _wait_for("the champion's version", lambda: text("champion-version") == "v1")
    assert text("challenger-version") == "v2"
    if httpx.get(f"{server}/rollout").status_code == 404:  # no controller, or nothing in flight
        assert text("rollout-stage") == "no rollout"
    _wait_for("the WebSocket", lambda: text("conn") == "live")
    _wait_for(
        "the heatmap",
        lambda: browser.execute_script(
            "const d = document.getElementById('chart-heatmap').data;"
            "return d && d.length && d[0].z.length;"
        ),
    )
    features = browser.execute_script("return document.getElementById('chart-heatmap').data[0].y;")
    assert "income" in features
    income_verdicts = browser.execute_script(
        "const d = document.getElementById('chart-heatmap').data[0];"
        "return d.z[d.y.indexOf('income')];"
    )
    assert income_verdicts[-1] in (1, 2), income_verdicts  # the shifted income is flagged
    assert text("live-count") == "0"
    assert not _severe(browser), "console errors while loading"

    # A prediction arrives: the live counter, the feed and the live class chart follow.
    with httpx.Client(base_url=server, timeout=10) as client:
        for i in range(5):
            r = client.post("/predict", json={"features": row(i), "request_id": f"live-{i}"})
            assert r.status_code == 200
    _wait_for("the live counter", lambda: text("live-count") == "5")
    feed = browser.find_elements(By.CSS_SELECTOR, "#feed tr")
    assert len(feed) == 5
    assert "live-4" in feed[0].text
    _wait_for(
        "the live class bars",
        lambda: browser.execute_script(
            "const d = document.getElementById('chart-classes').data;"
            "return d && d.length === 3 && d[2].y.reduce((a, b) => a + b, 0) > 0.99;"
        ),
    )

    # A report arrives over the WebSocket: the page asks for the state again.
    shown = text("report-detail")
    with httpx.Client(base_url=server, timeout=30) as client:
        new = client.post("/reports/run", headers=ADMIN).json()["id"]
    _wait_for("the new report", lambda: text("report-detail").startswith(f"#{new} "))
    assert text("report-detail") != shown

    # Some steady traffic for the live charts, then a full-page screenshot.
    stop = threading.Event()

    def steady() -> None:
        with httpx.Client(base_url=server, timeout=10) as client:
            i = 0
            while not stop.is_set():
                client.post("/predict", json={"features": row(i)})
                i += 1
                time.sleep(0.05)

    feeder = threading.Thread(target=steady, daemon=True)
    feeder.start()
    try:
        _wait_for(
            "several live traffic points",
            lambda: browser.execute_script(
                "const d = document.getElementById('chart-traffic').data;"
                "return d && d.length === 2 && d[1].x.length >= 3;"
            ),
            timeout=30,
        )
    finally:
        stop.set()
        feeder.join(10)
    assert int(text("live-count").replace(",", "")) > 5
    height = browser.execute_script("return document.documentElement.scrollHeight;")
    browser.set_window_size(1440, int(height) + 40)
    time.sleep(1.0)  # Plotly re-lays out on resize
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000
    errors = _severe(browser)
    assert not errors, f"browser console errors: {errors}"


READ_TOKEN = "dash-read-token-0001"


@pytest.fixture
def secured_server(
    chromium: tuple[str, str], settings: Settings, trained_bundle: ModelBundle
) -> Iterator[str]:
    """A real server with a read token (and the other two): the page must ask for it."""
    _register(settings, trained_bundle)
    env = {
        "DRIFTLINE_ADMIN_TOKEN": "dash-token-000001",
        "DRIFTLINE_LABELS_TOKEN": "dash-labels-token-0001",
        "DRIFTLINE_READ_TOKEN": READ_TOKEN,
    }
    with serve_subprocess(settings.home, env=env) as url:
        yield url


@pytest.mark.slow
def test_dashboard_in_headless_chromium_asks_for_the_read_token(
    secured_server: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    def text(element_id: str) -> str:
        return str(browser.find_element(By.ID, element_id).text)

    def form_shown() -> bool:
        return bool(browser.find_element(By.ID, "auth").is_displayed())

    def submit(token: str) -> None:
        field = browser.find_element(By.ID, "auth-token")
        field.clear()
        field.send_keys(token)
        browser.find_element(By.ID, "auth-open").click()

    def live_page() -> None:
        _wait_for("the champion's version", lambda: text("champion-version") == "v1")
        _wait_for("the WebSocket", lambda: text("conn") == "live")
        assert not form_shown()

    # Without a token the page asks for one and opens no WebSocket.
    browser.get(f"{secured_server}/dashboard")
    _wait_for("the token form", form_shown)
    assert text("auth-why") == "read token needed"
    assert text("champion-version") == "—" and text("conn") == "connecting…"
    submit("not-the-read-token-0001")
    _wait_for("the refusal", lambda: text("auth-why") == "wrong read token (HTTP 401)")
    assert text("champion-version") == "—"
    refusals = _severe(browser)  # the two 401s, expected; nothing else may fail
    assert all("401" in e["message"] for e in refusals), refusals

    # The right token: state and live events (the token rides as a WebSocket subprotocol).
    submit(READ_TOKEN)
    live_page()
    with httpx.Client(base_url=secured_server, timeout=10) as client:
        for i in range(3):
            r = client.post("/predict", json={"features": row(i), "request_id": f"tok-{i}"})
            assert r.status_code == 200
    _wait_for("the live counter", lambda: text("live-count") == "3")

    # A reload keeps the token for this tab; #token=... in the address works and is removed.
    browser.refresh()
    live_page()
    browser.execute_script("sessionStorage.clear();")
    browser.get("about:blank")
    browser.get(f"{secured_server}/dashboard#token={READ_TOKEN}")
    live_page()
    assert browser.execute_script("return location.hash;") == ""
    errors = _severe(browser)
    assert not errors, f"browser console errors: {errors}"
