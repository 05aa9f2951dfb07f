"""OpenTelemetry spans, checked with the SDK's in-memory exporter: an HTTP request and its
prediction, the store writer's batches, a monitor run; console and OTLP export; and no-ops
when OpenTelemetry is not installed."""

from __future__ import annotations

import http.server
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from driftline import tracing
from driftline.config import Settings
from driftline.data import generate_loans
from driftline.errors import ConfigurationError
from driftline.models import ModelBundle
from driftline.monitoring.monitor import MonitorOptions, run_monitor
from driftline.registry import Registry
from driftline.service import create_app
from driftline.service.runtime import ServingRuntime
from driftline.store import Store, StoreWriter, open_store, queries
from tests.support.records import prediction

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def rows(n: int) -> list[dict[str, Any]]:
    frame = generate_loans(n, seed=21, with_target=False)
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict(orient="records")
    ]


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def children(spans: InMemorySpanExporter, parent: ReadableSpan) -> list[str]:
    return sorted(s.name for s in spans.get_finished_spans() if parent_of(s) == span_id(parent))


@pytest.fixture
def client(settings: Settings, trained_bundle: ModelBundle) -> Iterator[TestClient]:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    with TestClient(create_app(settings.model_copy(update={"scheduler": False}))) as c:
        yield c


def runtime(client: TestClient) -> ServingRuntime:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def test_a_predict_request_is_a_server_span_with_a_predict_child(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    r = client.post(
        "/predict",
        json={"features": rows(1)[0]},
        headers={"X-Request-ID": "flow-9", "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
    )
    assert r.status_code == 200, r.text
    server = one(spans, "POST /predict")
    assert server.kind is SpanKind.SERVER
    assert server.attributes is not None and server.context is not None
    assert server.attributes["http.route"] == "/predict"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["driftline.request_id"] == "flow-9"
    # The caller's trace continues here (W3C trace context).
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert parent_of(server) == int(PARENT_ID, 16)

    predict = one(spans, "driftline.predict")
    assert parent_of(predict) == span_id(server)
    assert predict.attributes == {
        "driftline.model.version": 1,
        "driftline.variant": "champion",
        "driftline.rows": 1,
        "driftline.source": "api",
        "driftline.request_id": "flow-9",
    }


def test_a_batch_request_and_the_writer_batch_that_logs_it(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    instances = [{"features": f, "request_id": f"b-{i}"} for i, f in enumerate(rows(3))]
    r = client.post("/predict/batch", json={"instances": instances})
    assert r.status_code == 200, r.text
    writer = runtime(client).writer
    assert writer is not None and writer.flush(10)

    server = one(spans, "POST /predict/batch")
    assert server.attributes is not None
    assert server.attributes["driftline.request_id"] == r.headers["x-request-id"]
    predict = one(spans, "driftline.predict")
    assert parent_of(predict) == span_id(server)
    assert predict.attributes is not None
    assert predict.attributes["driftline.rows"] == 3
    assert predict.attributes["driftline.source"] == "batch"

    # The writer thread commits the three records in its own trace (it serves many requests).
    batches = [
        s
        for s in named(spans, "driftline.writer.batch")
        if s.attributes is not None and s.attributes["driftline.write.kind"] == "prediction"
    ]
    assert sum(int(s.attributes["driftline.rows"]) for s in batches) == 3  # type: ignore[index]
    assert all(s.parent is None for s in batches)
    assert {s.attributes["driftline.write.durable"] for s in batches} == {"store"}  # type: ignore[index]


def test_a_monitor_run_and_its_steps(client: TestClient, spans: InMemorySpanExporter) -> None:
    for features in rows(20):
        assert client.post("/predict", json={"features": features}).status_code == 200
    rt = runtime(client)
    rt.flush_buckets()
    spans.clear()

    with tracing.span("test.job") as job:
        assert job.is_recording()
        body = run_monitor(store=rt.store, registry=rt.registry, options=MonitorOptions())

    monitor = one(spans, "driftline.monitor")
    assert parent_of(monitor) == span_id(one(spans, "test.job"))
    assert children(spans, monitor) == [
        "driftline.monitor.build_report",
        "driftline.monitor.load_model",
        "driftline.monitor.persist",
        "driftline.monitor.read_window",
    ]
    # Which label-free estimator ran, and its cost (the doubly robust fit), is a span of its own.
    report = one(spans, "driftline.monitor.build_report")
    assert children(spans, report) == ["driftline.monitor.estimate_accuracy"]
    estimated = one(spans, "driftline.monitor.estimate_accuracy")
    assert estimated.attributes is not None
    assert estimated.attributes["driftline.monitor.estimator"] == body["performance"]["estimator"]
    assert monitor.attributes is not None
    assert monitor.attributes["driftline.model.version"] == 1
    assert monitor.attributes["driftline.rows"] == 20 == body["rows"]
    assert monitor.attributes["driftline.monitor.status"] == body["status"]
    assert monitor.attributes["driftline.monitor.report_id"] == body["id"]
    window = one(spans, "driftline.monitor.read_window")
    assert window.attributes is not None and window.attributes["driftline.rows"] == 20


def test_a_failing_monitor_run_is_an_error_span(
    registry: Registry, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(Exception, match="no champion"):
        run_monitor(store=registry.store, registry=registry)
    monitor = one(spans, "driftline.monitor")
    assert monitor.status.status_code is StatusCode.ERROR
    assert [e.name for e in monitor.events] == ["exception"]


def test_writer_batches_and_synchronous_writes(
    sqlite_store: Store, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    writer = StoreWriter(
        sqlite_store.engine,
        sqlite_store.sessions,
        {
            "prediction": lambda r, s: queries.insert_predictions(r, session=s),
            "label": lambda r, s: queries.upsert_labels(r, session=s),
        },
        tmp_path / "spill",
        flush_interval=0.2,
    )
    writer.start()
    try:
        now = time.time()
        for i in range(4):
            assert writer.offer("prediction", prediction(f"w-{i}", now))
        assert writer.flush(10)
        with tracing.span("test.request"):
            assert writer.write_now("label", [{"request_id": "w-0", "label": "1", "ts": now}])
    finally:
        writer.stop()

    batches = named(spans, "driftline.writer.batch")
    assert sum(int(s.attributes["driftline.rows"]) for s in batches) == 4  # type: ignore[index]
    assert {s.attributes["driftline.write.kind"] for s in batches} == {"prediction"}  # type: ignore[index]
    now_span = one(spans, "driftline.writer.write_now")
    assert parent_of(now_span) == span_id(one(spans, "test.request"))
    assert now_span.attributes == {
        "driftline.write.kind": "label",
        "driftline.rows": 1,
        "driftline.write.durable": "store",
    }


def test_nothing_is_recorded_without_a_provider() -> None:
    assert not tracing.enabled()
    with tracing.span("driftline.nothing", {"a": 1}) as current:
        assert not current.is_recording()
    tracing.annotate({"a": 1})  # no current span: nothing happens


def test_the_console_exporter_prints_spans(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    try:
        tracing.configure_tracing(Settings(tracing="console"))
        assert tracing.enabled()
        with tracing.span("driftline.example", {"driftline.rows": 2}):
            pass
        assert tracing.flush()
    finally:
        provider = tracing._state.provider
        tracing.set_tracer_provider(None)
        if provider is not None:
            provider.shutdown()
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "driftline.example"
    assert printed["attributes"] == {"driftline.rows": 2}
    assert printed["resource"]["attributes"]["service.name"] == "driftline"


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it receives."""

    bodies: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_otlp_export_reaches_a_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "driftline-test")
    try:
        tracing.configure_tracing(Settings(tracing="otlp"))
        with tracing.span("driftline.parent"), tracing.span("driftline.child", {"k": "v"}):
            pass
        assert tracing.flush()
    finally:
        provider = tracing._state.provider
        tracing.set_tracer_provider(None)
        if provider is not None:
            provider.shutdown()
        server.shutdown()
        server.server_close()

    assert [path for path, _ in _Collector.bodies] == ["/v1/traces"]
    request = ExportTraceServiceRequest.FromString(_Collector.bodies[0][1])
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "driftline-test"  # OpenTelemetry's own variable wins
    got = {s.name: s for scope in resource_spans.scope_spans for s in scope.spans}
    assert set(got) == {"driftline.parent", "driftline.child"}
    assert got["driftline.child"].parent_span_id == got["driftline.parent"].span_id


def test_otlp_without_the_exporter_package_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigurationError, match="opentelemetry-exporter-otlp-proto-http"):
        tracing.configure_tracing(Settings(tracing="otlp"))
    assert not tracing.enabled()


NO_OTEL = textwrap.dedent(
    """
    import asyncio, sys
    sys.modules["opentelemetry"] = None  # as if the `tracing` extra were not installed
    from driftline import tracing
    from driftline.config import Settings
    from driftline.errors import ConfigurationError

    assert not tracing.OTEL_AVAILABLE and not tracing.enabled()
    with tracing.span("a", {"x": 1}) as s:
        s.set_attribute("y", 2)
        tracing.annotate({"z": 3})

    @tracing.traced("b")
    def double(x: int) -> int:
        return 2 * x

    @tracing.traced("c")
    async def triple(x: int) -> int:
        return 3 * x

    assert double(2) == 4 and asyncio.run(triple(2)) == 6
    tracing.configure_tracing(Settings(tracing="none"))
    try:
        tracing.configure_tracing(Settings(tracing="console"))
    except ConfigurationError as exc:
        print(exc)
    """
)


def test_without_opentelemetry_everything_is_a_no_op() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_OTEL], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'driftline[tracing]'" in result.stdout


def test_scheduler_jobs_run_in_spans(sqlite_store: Store, spans: InMemorySpanExporter) -> None:
    """Each run of a scheduled job is a ``driftline.job`` span; its work nests inside."""
    import asyncio

    from driftline.scheduler import Job, Scheduler

    def work() -> None:
        with tracing.span("test.work"):
            pass

    async def main() -> None:
        scheduler = Scheduler(
            store=sqlite_store, worker_id="w", jobs=[Job("tick", 60.0, work)], tick=0.05
        )
        await scheduler.start()
        deadline = time.monotonic() + 5
        while not named(spans, "driftline.job") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await scheduler.stop()

    asyncio.run(main())
    job = one(spans, "driftline.job")
    assert job.attributes is not None and job.attributes["driftline.job"] == "tick"
    assert children(spans, job) == ["test.work"]
