"""Request ids and structured logs: every HTTP request has an id (X-Request-ID, the predict
body's request_id, else generated), echoed in the answer and carried by every log line written
while it is handled."""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from driftline.config import Settings
from driftline.data import generate_loans
from driftline.logs import configure_logging
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.service import create_app
from driftline.service.runtime import ServingRuntime
from driftline.store import open_store


def features(i: int = 0) -> dict[str, Any]:
    record = generate_loans(10, seed=21, with_target=False).iloc[i].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}


class Output:
    """What the root handler that configure_logging installs has written."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def readouterr(self) -> str:
        text = self.stream.getvalue()
        self.stream.seek(0)
        self.stream.truncate()
        return text


@pytest.fixture
def output() -> Iterator[Output]:
    """configure_logging replaces the root handler: put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield Output()
    root.handlers[:] = handlers
    root.setLevel(level)


def make_client(
    settings: Settings, bundle: ModelBundle, output: Output, **updates: Any
) -> TestClient:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(bundle, actor="test")
    store.dispose()
    settings = settings.model_copy(update={"scheduler": False, **updates})
    configure_logging(settings)
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output.stream)
    return TestClient(create_app(settings))


def json_lines(text: str) -> list[dict[str, Any]]:
    """The service's JSON lines (not those of the test's HTTP client)."""
    lines = [json.loads(line) for line in text.splitlines()]
    return [x for x in lines if x["logger"].startswith("driftline")]


@pytest.fixture
def client(settings: Settings, trained_bundle: ModelBundle, output: Output) -> Iterator[TestClient]:
    with make_client(settings, trained_bundle, output, log_format="json", access_log=True) as c:
        yield c


def test_the_client_s_id_is_echoed_and_in_the_json_log_line(
    client: TestClient, output: Output
) -> None:
    output.readouterr()
    r = client.post("/predict", json={"features": features()}, headers={"X-Request-ID": "req-1"})
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-ID"] == "req-1"
    assert r.json()["request_id"] == "req-1"  # the prediction is logged under the same id
    [line] = [x for x in json_lines(output.readouterr()) if x["logger"] == "driftline.access"]
    assert line["request_id"] == "req-1"
    assert (line["method"], line["path"], line["route"], line["status"]) == (
        "POST",
        "/predict",
        "/predict",
        200,
    )
    assert line["level"] == "INFO" and line["duration_ms"] > 0


def test_a_predict_body_s_id_becomes_the_request_s_id(client: TestClient, output: Output) -> None:
    output.readouterr()
    r = client.post("/predict", json={"features": features(), "request_id": "flow-7"})
    assert r.headers["X-Request-ID"] == "flow-7" == r.json()["request_id"]
    [line] = json_lines(output.readouterr())
    assert line["request_id"] == "flow-7"


def test_the_header_wins_over_the_body_and_a_generated_id_is_used_everywhere(
    client: TestClient,
) -> None:
    r = client.post(
        "/predict",
        json={"features": features(), "request_id": "order-3"},
        headers={"X-Request-ID": "trace-3"},
    )
    assert r.headers["X-Request-ID"] == "trace-3"
    assert r.json()["request_id"] == "order-3"  # the prediction keeps the body's own id
    r = client.post("/predict", json={"features": features()})
    generated = r.headers["X-Request-ID"]
    assert len(generated) == 32 and r.json()["request_id"] == generated
    assert client.get("/health").headers["X-Request-ID"] != generated  # one id per request


def test_an_unusable_header_is_replaced(client: TestClient) -> None:
    for bad in ("has spaces", "x" * 129):
        r = client.get("/health", headers={"X-Request-ID": bad})
        assert r.headers["X-Request-ID"] != bad and len(r.headers["X-Request-ID"]) == 32


def test_batch_predictions_keep_their_ids_under_the_request_s_id(
    client: TestClient, output: Output
) -> None:
    output.readouterr()
    instances = [{"features": features(i), "request_id": f"row-{i}"} for i in range(2)]
    r = client.post("/predict/batch", json={"instances": instances}, headers={"X-Request-ID": "b"})
    assert r.headers["X-Request-ID"] == "b"
    assert [p["request_id"] for p in r.json()["predictions"]] == ["row-0", "row-1"]
    assert [x["request_id"] for x in json_lines(output.readouterr())] == ["b"]


def test_a_warning_logged_while_handling_a_request_carries_its_id(
    client: TestClient, output: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    assert rt.champion is not None

    def broken(records: Any) -> Any:
        raise RuntimeError("model exploded")

    monkeypatch.setattr(rt.champion, "predict_records", broken)
    output.readouterr()
    r = client.post("/predict", json={"features": features()}, headers={"X-Request-ID": "bad-1"})
    assert r.status_code == 500 and r.headers["X-Request-ID"] == "bad-1"
    lines = json_lines(output.readouterr())
    [warning] = [x for x in lines if x["level"] == "WARNING"]
    assert "model exploded" in warning["message"]
    assert warning["logger"] == "driftline.service.batcher"  # logged on the model thread
    assert warning["request_id"] == "bad-1"
    assert {x["request_id"] for x in lines} == {"bad-1"}


def test_lines_outside_a_request_have_no_id(client: TestClient, output: Output) -> None:
    output.readouterr()
    logging.getLogger("driftline.test").warning("background work")
    [line] = json_lines(output.readouterr())
    assert line["message"] == "background work" and "request_id" not in line


def test_text_lines_show_the_id(
    settings: Settings,
    trained_bundle: ModelBundle,
    output: Output,
) -> None:
    with make_client(settings, trained_bundle, output, access_log=True) as c:
        output.readouterr()
        c.get("/health", headers={"X-Request-ID": "txt-1"})
        err = output.readouterr()
    [line] = [x for x in err.splitlines() if "driftline.access" in x]
    assert "INFO driftline.access [txt-1]: GET /health 200" in line


def test_no_access_log_by_default(
    settings: Settings,
    trained_bundle: ModelBundle,
    output: Output,
) -> None:
    with make_client(settings, trained_bundle, output, log_format="json") as c:
        output.readouterr()
        r = c.get("/health", headers={"X-Request-ID": "quiet"})
        assert r.headers["X-Request-ID"] == "quiet"
        assert json_lines(output.readouterr()) == []


# --- generated request ids ---------------------------------------------------------------------


def test_generated_request_ids_are_32_hex_digits_and_unique() -> None:
    from driftline.logs import new_request_id

    ids = [new_request_id() for _ in range(5_000)]  # several blocks of 256
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_never_hands_out_its_parent_s_next_ids() -> None:
    import os

    from driftline.logs import new_request_id

    new_request_id()  # a block is in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes its next ids and leaves at once
        os.close(read)
        os.write(write, " ".join(new_request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_request_id() for _ in range(10)}
    assert len(child) == 10 and not child & parent
