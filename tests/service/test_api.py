from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import CHAMPION, Registry
from driftline.service import create_app
from driftline.service.runtime import ServingRuntime
from driftline.store import open_store
from tests.support.records import row


@pytest.fixture
def client(settings: Settings, trained_bundle: ModelBundle) -> Iterator[TestClient]:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    settings = settings.model_copy(
        update={"admin_token": SecretStr("s3cret-token-0001"), "max_batch_size": 20}
    )
    with TestClient(create_app(settings)) as c:
        yield c


def runtime(client: TestClient) -> ServingRuntime:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def wait_durable(client: TestClient) -> None:
    writer = runtime(client).writer
    assert writer is not None and writer.flush(10)


def test_predict_object_and_list_forms(client: TestClient, trained_bundle: ModelBundle) -> None:
    features = row()
    r = client.post("/predict", json={"features": features, "request_id": "flow-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == "flow-1"
    assert body["model_version"] == 1 and body["variant"] == "champion"
    assert set(body["probabilities"]) == {"0", "1"}
    assert body["confidence"] == pytest.approx(max(body["probabilities"].values()))
    assert body["prediction"] in (0, 1) and body["latency_ms"] > 0
    as_list = [features[n] for n in trained_bundle.schema.names]
    r2 = client.post("/predict", json={"features": as_list})
    assert r2.status_code == 200
    assert r2.json()["probabilities"] == pytest.approx(body["probabilities"])
    assert len(r2.json()["request_id"]) == 32  # generated


def test_bad_requests_name_every_field(client: TestClient) -> None:
    features = row()
    features.update({"age": "forty", "income": None, "favourite_colour": "red"})
    del features["credit_score"]
    r = client.post("/predict", json={"features": features})
    assert r.status_code == 422
    locs = {".".join(map(str, e["loc"])) for e in r.json()["detail"]}
    assert locs == {
        "body.features.age",
        "body.features.income",
        "body.features.favourite_colour",
        "body.features.credit_score",
    }
    # NaN / Infinity are accepted by Python's JSON parser: they must still be refused.
    raw = '{"features": {"age": NaN}}'
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert any(
        e["loc"] == ["body", "features", "age"] and e["type"] == "not_finite"
        for e in r.json()["detail"]
    )
    r = client.post("/predict", json={"feature": features})
    assert r.status_code == 422 and "features" in r.text
    metrics = client.get("/metrics").text
    assert (
        'driftline_rejected_requests_total{endpoint="/predict",reason="validation"} 2.0' in metrics
    )


def test_batch_predictions_keep_order_and_limit_is_enforced(client: TestClient) -> None:
    instances = [{"features": row(i), "request_id": f"b{i}"} for i in range(5)]
    r = client.post("/predict/batch", json={"instances": instances})
    assert r.status_code == 200, r.text
    assert [p["request_id"] for p in r.json()["predictions"]] == [f"b{i}" for i in range(5)]
    single = client.post("/predict", json={"features": row(3)}).json()
    assert r.json()["predictions"][3]["probabilities"] == pytest.approx(single["probabilities"])
    bad = [{"features": row(0)}, {"features": {**row(1), "age": "x"}}]
    r = client.post("/predict/batch", json={"instances": bad})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "instances", 1, "features", "age"]
    too_long = [{"features": row(i)} for i in range(21)]
    r = client.post("/predict/batch", json={"instances": too_long})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "instances"]
    assert "exceeds the limit of 20" in r.json()["detail"][0]["msg"]


def test_labels_join_predictions_even_when_they_come_first(client: TestClient) -> None:
    r = client.post("/labels", json={"request_id": "early", "label": 1})
    assert r.json() == {"accepted": 1, "durable": "store"}
    client.post("/predict", json={"features": row(), "request_id": "early"})
    client.post("/predict", json={"features": row(1), "request_id": "other"})
    r = client.post("/labels", json={"labels": [{"request_id": "other", "label": 0.0}]})
    assert r.json()["accepted"] == 1
    wait_durable(client)
    page = client.get("/predictions", params={"has_label": True}).json()
    # Labels come back as the model's class values (0.0 was sent: class 0), as /predict
    # answers predictions; the prediction is a class value too, not its stored text.
    assert {(i["request_id"], i["label"]) for i in page["items"]} == {
        ("early", 1),
        ("other", 0),
    }
    assert {type(i["prediction"]) for i in page["items"]} == {int}
    answered = client.post("/predict", json={"features": row(2), "request_id": "typed"}).json()
    wait_durable(client)
    logged = client.get("/predictions", params={"limit": 1}).json()["items"][0]
    assert logged["request_id"] == "typed"
    assert logged["prediction"] == answered["prediction"]
    assert type(logged["prediction"]) is type(answered["prediction"])
    assert client.post("/labels", json={"labels": []}).status_code == 422
    assert client.post("/labels", json={"request_id": "x"}).status_code == 422


def test_predictions_filters_and_pages(client: TestClient) -> None:
    for i in range(7):
        client.post("/predict", json={"features": row(i), "request_id": f"p{i}"})
    wait_durable(client)
    page = client.get("/predictions", params={"limit": 3}).json()
    assert page["total"] == 7 and len(page["items"]) == 3 and page["next_offset"] == 3
    assert page["items"][0]["request_id"] == "p6"
    last = client.get("/predictions", params={"limit": 3, "offset": 6}).json()
    assert last["next_offset"] is None and len(last["items"]) == 1
    assert client.get("/predictions", params={"window": "1h"}).json()["total"] == 7
    assert client.get("/predictions", params={"version": 2}).json()["total"] == 0
    future = time.time() + 3600
    assert client.get("/predictions", params={"start": future}).json()["total"] == 0
    r = client.get("/predictions", params={"window": "soon"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "window"]


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == 1
    client.post("/predict", json={"features": row()})
    wait_durable(client)
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    for name in (
        "driftline_http_requests",
        "driftline_http_request_duration_seconds",
        "driftline_prediction_latency_seconds",
        "driftline_model_version",
        "driftline_model_reloads",
        "driftline_writer_queue_depth",
        "driftline_records_spilled",
        "driftline_websocket_clients",
    ):
        assert name in families, name
    version = {s.labels["alias"]: s.value for s in families["driftline_model_version"].samples}
    assert version[CHAMPION] == 1
    written = families["driftline_records_written"].samples
    assert any(s.labels.get("kind") == "prediction" and s.value >= 1 for s in written)


def test_not_ready_without_a_model(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and "no champion model loaded" in r.json()["reasons"]
        r = c.post("/predict", json={"features": {"x": 1}})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_admin_endpoints_need_the_token(client: TestClient) -> None:
    assert client.post("/models/reload").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/models/reload", headers=wrong).status_code == 401
    ok = client.post("/models/reload", headers={"Authorization": "Bearer s3cret-token-0001"})
    assert ok.status_code == 200 and ok.json() == {"reloaded": False, "model_version": 1}


def test_admin_disabled_without_token(settings: Settings, trained_bundle: ModelBundle) -> None:
    with TestClient(create_app(settings)) as c:
        r = c.post("/models/reload", headers={"Authorization": "Bearer x"})
        assert r.status_code == 403 and "DRIFTLINE_ADMIN_TOKEN" in r.json()["detail"]


def next_event(ws: Any, kind: str, *, limit: int = 100) -> dict[str, Any]:
    """The next WebSocket event of type ``kind``. Events this test does not control (the
    scheduler's monitor report, say) may come first: they are skipped, up to ``limit``."""
    skipped = []
    for _ in range(limit):
        event: dict[str, Any] = ws.receive_json()
        if event["type"] == kind:
            return event
        skipped.append(event["type"])
    raise AssertionError(f"no {kind!r} event among the next {limit}: {skipped}")


def test_hot_reload_swaps_model_and_emits_event(
    client: TestClient, trained_bundle: ModelBundle
) -> None:
    rt = runtime(client)
    v2 = rt.registry.register(trained_bundle, actor="test", reason="v2")
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
        rt.registry.promote(v2, actor="test", reason="better")
        event = next_event(ws, "model_updated")  # the poller (0.2 s) notices the alias move
        assert (event["version"], event["previous_version"]) == (2, 1)
    assert client.post("/predict", json={"features": row()}).json()["model_version"] == 2
    assert 'driftline_model_reloads_total{result="ok"} 1.0' in client.get("/metrics").text


def test_admin_promote_and_rollback(client: TestClient, trained_bundle: ModelBundle) -> None:
    runtime(client).registry.register(trained_bundle)
    auth = {"Authorization": "Bearer s3cret-token-0001"}
    r = client.post("/models/promote", json={"version": 2, "reason": "test"}, headers=auth)
    assert r.json() == {"alias": "champion", "from_version": 1, "to_version": 2}
    assert client.get("/health").json()["model_version"] == 2
    r = client.post("/models/rollback", json={"reason": "bad"}, headers=auth)
    assert r.json()["to_version"] == 1
    models = client.get("/models").json()
    assert models["serving_version"] == 1 and models["aliases"] == {"champion": 1}
    assert [m["reason"] for m in models["history"]][:2] == ["rollback: bad", "test"]
    metrics = client.get("/metrics").text
    assert 'driftline_rollbacks_total{actor="manual"} 1.0' in metrics
    assert 'driftline_rollbacks_total{actor="slo_guard"} 0.0' in metrics
    r = client.post("/models/promote", json={"version": 99}, headers=auth)
    assert r.status_code == 404


def test_websocket_streams_prediction_events(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        assert hello["model_version"] == 1
        client.post("/predict", json={"features": row(), "request_id": "live-1"})
        event = next_event(ws, "prediction")
        assert event["request_id"] == "live-1"
        assert client.get("/health").status_code == 200
        text = client.get("/metrics").text
        assert "driftline_websocket_clients 1.0" in text


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/predict",
        "/predict/batch",
        "/labels",
        "/health",
        "/ready",
        "/metrics",
        "/predictions",
        "/models",
        "/models/reload",
        "/models/promote",
        "/models/rollback",
    } <= paths
    assert "422" in spec["paths"]["/predict"]["post"]["responses"]
    assert spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]


def test_an_answer_plain_json_cannot_write_goes_through_the_response_model() -> None:
    import json

    from fastapi.responses import Response

    from driftline.service.routes.predict import rendered

    answer = {
        "request_id": "r1",
        "prediction": 1,
        "probabilities": {"0": 0.25, "1": 0.75},
        "confidence": 0.75,
        "model_version": 3,
        "variant": "champion",
        "latency_ms": 1.5,
    }
    ready = rendered(answer)
    assert isinstance(ready, Response) and json.loads(ready.body) == answer
    odd = {**answer, "confidence": float("nan")}
    assert rendered(odd) is odd  # FastAPI serialises it with PredictResponse, as before
