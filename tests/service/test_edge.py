"""The HTTP edge: no input makes a 500, what no store can hold is refused with a 422 naming the
field, a 422 repeats only a short JSON-safe prefix of a bad value, bodies are capped, and what
passes the edge is stored (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from driftline.config import Settings
from driftline.data import generate_loans
from driftline.limits import (
    ECHO_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    MAX_ROW_ID,
    MAX_TEXT_LENGTH,
    MAX_VERSION,
)
from driftline.logs import configure_logging
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.service import create_app
from driftline.service.runtime import ServingRuntime
from driftline.store import open_store
from driftline.streams.source import StreamEvent, decode_event

ADMIN_TOKEN = "edge-test-admin-token-0123456789"
HUGE = "100000000000000000000"  # 1e20: beyond every integer column


def features(i: int = 0) -> dict[str, Any]:
    record = generate_loans(10, seed=21, with_target=False).iloc[i].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}


def strict_json(text: str) -> Any:
    """Parse as a strict JSON parser would: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def make_client(settings: Settings, bundle: ModelBundle, **updates: Any) -> TestClient:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(bundle, actor="test")
    store.dispose()
    settings = settings.model_copy(
        update={"scheduler": False, "admin_token": SecretStr(ADMIN_TOKEN), **updates}
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def client(settings: Settings, trained_bundle: ModelBundle) -> Iterator[TestClient]:
    with make_client(settings, trained_bundle) as c:
        yield c


def runtime(client: TestClient) -> ServingRuntime:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def post_raw(client: TestClient, url: str, text: str) -> Any:
    return client.post(url, content=text, headers={"content-type": "application/json"})


def locs(response: Any) -> list[list[Any]]:
    return [e["loc"] for e in strict_json(response.text)["detail"]]


# --- integers beyond the database ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "loc", "bound"),
    [
        (f"/predictions?offset={HUGE}", ["query", "offset"], MAX_ROW_ID),
        (f"/predictions?version={HUGE}", ["query", "version"], MAX_VERSION),
        (f"/reports/{HUGE}", ["path", "report_id"], MAX_ROW_ID),
        (f"/reports?offset={HUGE}", ["query", "offset"], MAX_ROW_ID),
        (f"/alerts?offset={HUGE}", ["query", "offset"], MAX_ROW_ID),
    ],
)
def test_integers_too_large_for_the_database_are_a_422_with_the_bound(
    client: TestClient, url: str, loc: list[str], bound: int
) -> None:
    r = client.get(url)
    assert r.status_code == 422, r.text
    [error] = strict_json(r.text)["detail"]
    assert error["loc"] == loc
    assert error["ctx"] == {"le": bound}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"version": int(HUGE)}, ["body", "version"]),
        ({"version": MAX_VERSION + 1}, ["body", "version"]),
    ],
)
def test_versions_too_large_for_the_database_are_refused_in_admin_bodies(
    client: TestClient, body: dict[str, Any], loc: list[str]
) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for url in ("/models/promote", "/models/rollback", "/rollout/start"):
        r = client.post(url, json=body, headers=auth)
        assert r.status_code == 422, (url, r.text)
        assert locs(r) == [loc]


def test_the_bounds_themselves_are_answered_by_every_store(
    settings: Settings, trained_bundle: ModelBundle, db_url: str
) -> None:
    settings = settings.model_copy(update={"database_url": db_url})
    with make_client(settings, trained_bundle) as c:
        r = c.get(f"/predictions?offset={MAX_ROW_ID}&version={MAX_VERSION}")
        assert r.status_code == 200, r.text
        assert r.json()["items"] == [] and r.json()["next_offset"] is None
        assert c.get(f"/reports/{MAX_ROW_ID}").status_code == 404
        assert c.get(f"/reports?offset={MAX_ROW_ID}").json()["items"] == []
        assert c.get(f"/alerts?offset={MAX_ROW_ID}").json()["items"] == []


# --- request ids --------------------------------------------------------------------------------

BAD_IDS = {
    "outside latin-1": "日本-1",
    "latin-1 but not ASCII": "café",
    "CR LF": "a\r\nX-Injected: 1",
    "NUL": "a\x00b",
    "a space": "order 7",
    "too long": "x" * (MAX_REQUEST_ID_LENGTH + 1),
}


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_a_request_id_no_header_or_store_can_hold_is_a_422_naming_it(
    client: TestClient, bad: str
) -> None:
    r = client.post("/predict", json={"features": features(), "request_id": bad})
    assert r.status_code == 422, r.text
    assert locs(r) == [["body", "request_id"]]
    assert str(MAX_REQUEST_ID_LENGTH) in r.json()["detail"][0]["msg"]
    r = client.post(
        "/predict/batch",
        json={"instances": [{"features": features()}, {"features": features(), "request_id": bad}]},
    )
    assert r.status_code == 422 and locs(r) == [["body", "instances", 1, "request_id"]]
    r = client.post("/labels", json={"labels": [{"request_id": bad, "label": 1}]})
    assert r.status_code == 422 and ["body", "LabelsRequest", "labels", 0, "request_id"] in locs(r)


def test_the_longest_request_id_is_served_and_echoed(client: TestClient) -> None:
    rid = "~" * MAX_REQUEST_ID_LENGTH
    r = client.post("/predict", json={"features": features(), "request_id": rid})
    assert r.status_code == 200, r.text
    assert r.json()["request_id"] == rid == r.headers["X-Request-ID"]


def test_a_header_id_outside_ascii_is_replaced_not_a_500(client: TestClient) -> None:
    r = client.get("/health", headers={"X-Request-ID": "caf\xc3\xa9".encode("latin-1")})
    assert r.status_code == 200
    assert len(r.headers["X-Request-ID"]) == 32


def test_a_stream_event_follows_the_same_request_id_rule() -> None:
    for bad in BAD_IDS.values():
        _, _, errors = decode_event(StreamEvent("1-0", {"features": "{}", "request_id": bad}))
        assert [e["loc"] for e in errors] == [["request_id"]], bad
        assert "visible ASCII" in errors[0]["msg"]
    assert decode_event(StreamEvent("1-0", {"features": "{}", "request_id": "flow-1"}))[2] == []


# --- feature values -----------------------------------------------------------------------------


def test_a_numeric_feature_of_401_digits_is_a_422(client: TestClient) -> None:
    record = json.dumps({**features(), "income": 0})
    text = '{"features": ' + record.replace('"income": 0', '"income": ' + "9" * 401) + "}"
    r = post_raw(client, "/predict", text)
    assert r.status_code == 422, r.text
    [error] = strict_json(r.text)["detail"]
    assert error["loc"] == ["body", "features", "income"]
    assert "401 digits" in error["msg"]


@pytest.mark.parametrize(
    "value",
    ["RENT\x00", "RE\nNT", "RENT\r", "a\tb", "\x7f", "\x85", "\ud800", "x" * (MAX_TEXT_LENGTH + 1)],
)
def test_a_category_no_store_can_hold_is_a_422_naming_the_feature(
    client: TestClient, value: str
) -> None:
    record = {**features(), "home_ownership": value}
    r = post_raw(client, "/predict", json.dumps({"features": record}))
    assert r.status_code == 422, r.text
    assert locs(r) == [["body", "features", "home_ownership"]]
    assert stored(client) == 0


def stored(client: TestClient) -> int:
    """How many predictions the store holds, once the writer has drained."""
    writer = runtime(client).writer
    assert writer is not None and writer.flush(10)
    total: int = client.get("/predictions").json()["total"]
    return total


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ("9" * 401, "256"),
        (json.dumps("x" * (MAX_LABEL_LENGTH + 1)), "256"),
        (json.dumps("a\u0000b"), "control character"),
        (json.dumps("a\nb"), "control character"),
    ],
)
def test_a_label_no_store_can_hold_is_a_422(client: TestClient, label: str, words: str) -> None:
    r = post_raw(client, "/labels", '{"request_id": "r-1", "label": ' + label + "}")
    assert r.status_code == 422, r.text
    errors = strict_json(r.text)["detail"]
    [mine] = [e for e in errors if e["loc"] == ["body", "LabelIn", "label"]]
    assert words in mine["msg"]
    r = post_raw(client, "/labels", '{"labels": [{"request_id": "r-1", "label": ' + label + "}]}")
    assert r.status_code == 422, r.text
    assert ["body", "LabelsRequest", "labels", 0, "label"] in locs(r)


# --- what a 422 repeats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("/predict", '{"features": NaN}'),
        ("/predict", '{"features": {}, "request_id": NaN}'),
        ("/predict", '{"features": {}, "routing_key": Infinity}'),
        ("/predict/batch", '{"instances": NaN}'),
        ("/predict/batch", '{"instances": [{"features": -Infinity}]}'),
        ("/labels", '{"labels": NaN}'),
        ("/labels", '{"request_id": NaN, "label": 1}'),
    ],
)
def test_nan_where_a_string_or_object_is_expected_is_a_serialisable_422(
    client: TestClient, url: str, text: str
) -> None:
    r = post_raw(client, url, text)
    assert r.status_code == 422, r.text
    assert strict_json(r.text)["detail"]  # the answer is strict JSON


def test_a_422_repeats_only_a_short_prefix_of_a_bad_value(client: TestClient) -> None:
    huge = "z" * 100_000
    r = client.post("/predict", json={"features": features(), "request_id": huge})
    assert r.status_code == 422
    assert len(r.content) < 2_000
    [error] = r.json()["detail"]
    assert error["input"] == "z" * ECHO_LENGTH + "…"
    r = client.post("/predict", json={"features": {**features(), "k" * 100_000: 1}})
    assert r.status_code == 422 and len(r.content) < 2_000
    r = post_raw(client, "/predict", json.dumps({"features": {**features(), "\ud800": 1}}))
    assert r.status_code == 422, r.text
    assert locs(r) == [["body", "features", "\\ud800"]]


# --- headers and bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("admin", [True, False])
def test_a_non_ascii_authorization_header_is_a_400(
    settings: Settings, trained_bundle: ModelBundle, admin: bool
) -> None:
    updates = {} if admin else {"admin_token": None}
    with make_client(settings, trained_bundle, **updates) as c:
        for value in ("Bearer é".encode(), "Bearer \xff".encode("latin-1"), b"Bearer \x01"):
            r = c.post("/models/reload", headers={"Authorization": value})
            assert r.status_code == 400, r.text
            assert "Authorization" in r.json()["detail"]
        ok = c.post("/models/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert ok.status_code == (200 if admin else 403)


def test_a_body_over_the_cap_is_a_413_with_or_without_content_length(
    settings: Settings, trained_bundle: ModelBundle
) -> None:
    with make_client(settings, trained_bundle, max_body_bytes=4_096) as c:
        small = {"instances": [{"features": features()}]}
        assert c.post("/predict/batch", json=small).status_code == 200
        big = json.dumps({"instances": [{"features": features(i % 10)} for i in range(40)]})
        assert len(big) > 4_096
        r = post_raw(c, "/predict/batch", big)
        assert r.status_code == 413, r.text

        def chunks() -> Iterator[bytes]:
            data = big.encode()
            for start in range(0, len(data), 512):
                yield data[start : start + 512]

        r = c.post(
            "/predict/batch", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413, r.text
        assert stored(c) == 1  # nothing of a refused body was predicted or logged


# --- logs ---------------------------------------------------------------------------------------


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """configure_logging replaces the root handler: put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_client_s_cr_lf_cannot_forge_a_text_log_line(
    settings: Settings, trained_bundle: ModelBundle, root_handlers: None
) -> None:
    stream = io.StringIO()
    forged = "%0D%0A2026-01-01 00:00:00,000 INFO driftline.access: GET /admin 200"
    with make_client(settings, trained_bundle, access_log=True) as c:
        configure_logging(c.app.state.settings)  # type: ignore[attr-defined]
        [handler] = logging.getLogger().handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        r = c.get(f"/predictions{forged}")
        assert r.status_code == 404
    lines = stream.getvalue().splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01")], lines
    [access] = [line for line in lines if " INFO driftline.access [" in line]
    assert "GET /predictions\\r\\n2026-01-01 00:00:00,000 INFO driftline.access: GET" in access


# --- the OpenAPI document -----------------------------------------------------------------------


def test_every_json_endpoint_declares_its_response_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation["responses"].get("200", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if "application/json" in content and (schema is None or "$ref" not in schema):
                untyped.append(f"{method.upper()} {path}")
    assert untyped == []


# --- what passes the edge is stored -------------------------------------------------------------


def test_the_extremes_the_edge_accepts_are_stored(
    settings: Settings, trained_bundle: ModelBundle, db_url: str
) -> None:
    settings = settings.model_copy(update={"database_url": db_url})
    category = ("é日本🙂" * MAX_TEXT_LENGTH)[:MAX_TEXT_LENGTH]
    rid = "~" * MAX_REQUEST_ID_LENGTH
    label = ("ü" * MAX_LABEL_LENGTH)[:MAX_LABEL_LENGTH]
    with make_client(settings, trained_bundle) as c:
        r = c.post(
            "/predict",
            json={"features": {**features(), "home_ownership": category}, "request_id": rid},
        )
        assert r.status_code == 200, r.text
        r = c.post("/labels", json={"request_id": rid, "label": label})
        # Durable either way: on a loaded machine a commit that misses the writer's deadline
        # marks the store down for a moment and the label goes to the spill log; flush()
        # replays it. What this test is about is that the store then holds every extreme.
        assert r.status_code == 200 and r.json()["durable"] in {"store", "spill"}, r.text
        writer = runtime(c).writer
        assert writer is not None and writer.flush(10)
        assert writer.spill_pending == 0 and writer.dead_lettered_total == 0
        [item] = c.get("/predictions").json()["items"]
    assert item["request_id"] == rid
    assert item["features"]["home_ownership"] == category
    assert item["label"] == label


def test_text_postgresql_refuses_is_a_422_in_queries_and_admin_bodies(
    settings: Settings, trained_bundle: ModelBundle, db_url: str
) -> None:
    settings = settings.model_copy(update={"database_url": db_url})
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with make_client(settings, trained_bundle) as c:
        r = c.get("/audit", params={"kind": ["promotion", "a\x00b"]})
        assert r.status_code == 422, r.text
        assert locs(r) == [["query", "kind", 1]]
        assert c.get("/audit", params={"kind": "promotion"}).status_code == 200
        for url, body in [
            ("/models/promote", {"version": 1, "reason": "why\x00"}),
            ("/models/rollback", {"reason": "why\x00"}),
            ("/rollout/abort", {"reason": "why\x00"}),
        ]:
            r = c.post(url, json=body, headers=auth)
            assert r.status_code == 422, (url, r.text)
            assert locs(r) == [["body", "reason"]]


def test_the_readme_states_the_limits_the_code_applies() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n### Limits at the edge\n", 1)[1].split("\n## ", 1)[0]
    assert f"1 to {MAX_REQUEST_ID_LENGTH} visible ASCII characters" in section
    assert f"at most {MAX_TEXT_LENGTH:,} characters" in section
    assert f"text of at most {MAX_LABEL_LENGTH} characters" in section
    assert f"1 to {MAX_VERSION:,}" in section and f"to {MAX_ROW_ID:,}" in section
    assert f"first {ECHO_LENGTH} characters" in section
    default = Settings.model_fields["max_body_bytes"].default
    assert f"| `DRIFTLINE_MAX_BODY_BYTES` | `{default}` |" in readme
