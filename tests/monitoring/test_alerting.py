"""Built-in alerting end to end: drift in a report → alert recorded, webhook notified,
listed by GET /alerts and `driftline alerts`; resolved when the drift goes away."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from driftline.cli import app as cli
from driftline.config import Settings
from driftline.data import generate_loans
from driftline.registry import Registry
from driftline.service import create_app
from driftline.store import open_store
from tests.monitoring.conftest import drifted, runtime, send, settle


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_drift_alert_is_recorded_notified_and_resolved(
    settings: Settings, loan_bundle: Any, receiver: Receiver, tmp_path: Path
) -> None:
    config = tmp_path / "alerts.yml"
    config.write_text(
        f"""
notifiers:
  hook:
    type: webhook
    url: http://127.0.0.1:{receiver.server_address[1]}/alerts
routes:
  - notifiers: [hook]
rules:  # no waiting: this test has one report per state, minutes of `for` would not pass
  DriftlineFeatureDriftCritical: {{for: 0s, keep_firing_for: 0s}}
"""
    )
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(loan_bundle, actor="test")
    store.dispose()
    s = settings.model_copy(
        update={
            "scheduler": False,
            "alerts_config": config,
            "monitor_window_seconds": 4.0,  # short buckets and window: the past ages out fast
            "monitor_bucket_seconds": 1.0,
        }
    )
    with TestClient(create_app(s)) as client:
        rt = runtime(client)
        send(client, drifted(3_000, seed=31), "d", labels=False)
        settle(client)
        rt.jobs.monitor()  # the report, then the alert rules right after it
        firing = client.get("/alerts", params={"status": "firing"}).json()["items"]
        names = {(a["name"], a["labels"].get("feature")) for a in firing}
        assert ("DriftlineFeatureDriftCritical", "income") in names
        [critical] = [a for a in firing if a["name"] == "DriftlineFeatureDriftCritical"]
        assert critical["notified"] == ["hook"]
        sent = [b for b in receiver.bodies if b["status"] == "firing"]
        assert any(
            a["labels"]["alertname"] == "DriftlineFeatureDriftCritical"
            for b in sent
            for a in b["alerts"]
        ), receiver.bodies
        assert (
            'driftline_alerts_firing{alertname="DriftlineFeatureDriftCritical"'
            in client.get("/metrics").text
        )
        rt.jobs.monitor()  # still drifting: no duplicate notification
        assert len([b for b in receiver.bodies if b["status"] == "firing"]) == len(sent)
        # the world goes back to normal: the drifted buckets age out of the window
        time.sleep(4.5)
        send(client, generate_loans(3_000, seed=32), "n", labels=False)
        settle(client)
        rt.jobs.monitor()
        resolved = client.get("/alerts", params={"status": "resolved"}).json()["items"]
        assert any(a["name"] == "DriftlineFeatureDriftCritical" for a in resolved)
        assert any(b["status"] == "resolved" for b in receiver.bodies)
        audit = client.get("/audit", params={"kind": "alert"}).json()["items"]
        assert audit and audit[-1]["details"]["delivered"] == ["hook"]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["--home", str(settings.home), "alerts"])
    assert result.exit_code == 0 and "feature=income" in result.output
    assert "resolved" in result.output and "hook" in result.output
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["--home", str(settings.home), "audit", "--kind", "alert"]
    )
    assert result.exit_code == 0 and "firing" in result.output


def test_restarting_serve_sends_nothing_for_a_drift_that_lasts(
    settings: Settings, loan_bundle: Any, receiver: Receiver, tmp_path: Path
) -> None:
    """Issue 14: a restart used to resolve every drift alert at start-up (the report gauges
    are empty until the latest report is exported again) and fire them again moments later.
    ``for`` and ``keep_firing_for`` are 0 here, so only "no report yet is no recovery" keeps
    the restart quiet."""
    config = tmp_path / "alerts.yml"
    config.write_text(
        f"""
notifiers:
  hook: {{type: webhook, url: "http://127.0.0.1:{receiver.server_address[1]}/alerts"}}
default: [hook]
rules:
  DriftlineFeatureDriftCritical: {{for: 0s, keep_firing_for: 0s}}
  DriftlineFeatureDriftWarning: {{for: 0s, keep_firing_for: 0s}}
"""
    )
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(loan_bundle, actor="test")
    store.dispose()
    s = settings.model_copy(
        update={"scheduler": False, "alerts_config": config, "monitor_bucket_seconds": 1.0}
    )
    with TestClient(create_app(s)) as client:
        rt = runtime(client)
        send(client, drifted(3_000, seed=31), "d", labels=False)
        settle(client)
        rt.jobs.monitor()
    firing = [b for b in receiver.bodies if b["status"] == "firing"]
    assert firing and not [b for b in receiver.bodies if b["status"] == "resolved"]
    sent = len(receiver.bodies)

    with TestClient(create_app(s)) as client:  # the restart
        rt = runtime(client)
        rt.jobs.alerts()  # what the scheduler runs first, before the report is re-exported
        rt.jobs.monitor()  # the next report: the same drifted window
        rt.jobs.alerts()
        assert client.get("/alerts", params={"status": "resolved"}).json()["items"] == []
    assert len(receiver.bodies) == sent, receiver.bodies[sent:]
