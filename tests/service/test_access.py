"""Access control (README "Access control"): tokens that cannot be switched on by accident, one
permission per token on every protected route and on the WebSocket, constant-time comparison,
and no serving beyond loopback while labels or reads are open unless the operator says so."""

from __future__ import annotations

import base64
import hmac
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError
from starlette.testclient import WebSocketDenialResponse
from typer.testing import CliRunner

from driftline.cli import app as cli_app
from driftline.config import Settings, check_access, is_loopback, token_problem
from driftline.errors import ConfigurationError
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.service import create_app
from driftline.service import deps as deps_module
from driftline.service.deps import Permission, granted, subprotocol_token
from driftline.store import open_store
from tests.support.records import row
from tests.support.servers import free_port

ADMIN = "admin-token-0123456789"
LABELS = "labels-token-0123456789"
READ = "read-token-0123456789"
TOKEN_VARIABLES = ("DRIFTLINE_ADMIN_TOKEN", "DRIFTLINE_LABELS_TOKEN", "DRIFTLINE_READ_TOKEN")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ws_protocol(token: str) -> str:
    """What the dashboard sends: the token, base64url without padding, as a subprotocol."""
    return "driftline.bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


@pytest.fixture(autouse=True)
def _no_tokens_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*TOKEN_VARIABLES, "DRIFTLINE_ALLOW_UNAUTHENTICATED", "DRIFTLINE_HOST"):
        monkeypatch.delenv(name, raising=False)


# --- tokens that cannot be switched on by accident ---------------------------------------------


@pytest.mark.parametrize("variable", TOKEN_VARIABLES)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is set but empty"),
        ("x", "is 1 characters long: use at least 16"),
        ("fifteen-chars-x", "is 15 characters long: use at least 16"),
        ("sixteen chars ok", "holds a space"),
        ("non-ascii-tökén-0123", "non-ASCII"),
    ],
)
def test_an_empty_short_or_unsendable_token_is_refused_at_settings_validation(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(PydanticValidationError) as info:
        Settings()
    text = str(info.value)
    assert variable in text and message in text
    if value:
        assert value not in text  # the rejected secret is never echoed


def test_a_token_of_16_visible_ascii_characters_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLINE_ADMIN_TOKEN", "0123456789abcdef")
    settings = Settings()
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "0123456789abcdef"
    assert token_problem("0123456789abcdef") is None


def test_the_app_refuses_to_start_with_a_short_token_that_skipped_validation(
    settings: Settings,
) -> None:
    # ``model_copy`` does not validate: create_app checks again.
    for name in ("admin_token", "labels_token", "read_token"):
        for bad in ("", "s3cret"):
            copy = settings.model_copy(update={name: SecretStr(bad)})
            with pytest.raises(ConfigurationError, match=f"DRIFTLINE_{name.upper()} is"):
                create_app(copy)


def test_the_cli_refuses_an_empty_or_short_admin_token_without_echoing_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append((a, k)))
    for value, message in (("", "is set but empty"), ("short-secret", "is 12 characters")):
        monkeypatch.setenv("DRIFTLINE_ADMIN_TOKEN", value)
        result = CliRunner().invoke(cli_app, ["--home", str(settings.home), "serve"])
        assert result.exit_code == 1
        flat = " ".join(result.output.split())
        assert "DRIFTLINE_ADMIN_TOKEN" in flat and message in flat
        if value:
            assert value not in result.output
    assert started == []


# --- the loopback rule ------------------------------------------------------------------------


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.20", "2001:db8::1", "nohost.invalid"):
        assert not is_loopback(host), host


def test_a_non_loopback_bind_is_refused_while_labels_or_reads_are_open(settings: Settings) -> None:
    tokens = {"labels_token": SecretStr(LABELS), "read_token": SecretStr(READ)}
    for host in ("127.0.0.1", "localhost", "::1"):  # loopback stays open by default
        check_access(settings.model_copy(update={"host": host}))
    for host in ("0.0.0.0", "::", "192.168.1.20"):
        exposed = settings.model_copy(update={"host": host})
        with pytest.raises(ConfigurationError) as info:
            check_access(exposed)
        message = str(info.value)
        assert host in message and "--allow-unauthenticated" in message
        assert "DRIFTLINE_LABELS_TOKEN" in message and "DRIFTLINE_READ_TOKEN" in message
        # The admin token alone does not close labels and reads; one of the two is not enough.
        for partial in (
            {"admin_token": SecretStr(ADMIN)},
            {"labels_token": SecretStr(LABELS)},
            {"read_token": SecretStr(READ)},
        ):
            with pytest.raises(ConfigurationError):
                check_access(exposed.model_copy(update=partial))
        check_access(exposed.model_copy(update=tokens))
        check_access(exposed.model_copy(update={"allow_unauthenticated": True}))
        with pytest.raises(ConfigurationError, match="refusing to serve"):
            create_app(exposed)


def test_serve_on_a_non_loopback_address_needs_the_tokens_or_the_flag(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(k))
    runner = CliRunner()
    base = ["--home", str(settings.home), "serve", "--host", "0.0.0.0", "--port", "0"]
    refused = runner.invoke(cli_app, base)
    assert refused.exit_code == 1 and "--allow-unauthenticated" in refused.output
    assert started == []
    allowed = runner.invoke(cli_app, [*base, "--allow-unauthenticated"])
    assert allowed.exit_code == 0, allowed.output
    assert started[-1]["host"] == "0.0.0.0"
    monkeypatch.setenv("DRIFTLINE_LABELS_TOKEN", LABELS)
    monkeypatch.setenv("DRIFTLINE_READ_TOKEN", READ)
    closed = runner.invoke(cli_app, base)
    assert closed.exit_code == 0, closed.output
    assert len(started) == 2


def test_a_real_serve_on_0_0_0_0_without_tokens_exits_non_zero_before_binding(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, "-m", "driftline", "serve", "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert "refusing to serve on 0.0.0.0" in message and "--allow-unauthenticated" in message
    assert "driftline API on" not in proc.stdout  # it never got to listen
    assert not (home / "driftline.db").exists()  # nor to open the store


# --- permissions on every protected route ------------------------------------------------------


@pytest.fixture
def client(settings: Settings, trained_bundle: ModelBundle) -> Iterator[TestClient]:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    secured = settings.model_copy(
        update={
            "scheduler": False,
            "admin_token": SecretStr(ADMIN),
            "labels_token": SecretStr(LABELS),
            "read_token": SecretStr(READ),
        }
    )
    with TestClient(create_app(secured)) as c:
        r = c.post("/predict", json={"features": row(0), "request_id": "req-1"})
        assert r.status_code == 200, r.text
        writer = c.app.state.runtime.writer  # type: ignore[attr-defined]
        assert writer is not None and writer.flush(10)
        r = c.post("/reports/run", headers=bearer(ADMIN))
        assert r.status_code == 200, r.text
        yield c


def _call(client: TestClient, method: str, path: str, headers: dict[str, Any]) -> Any:
    if method == "GET":
        return client.get(path, headers=headers)
    body: dict[str, Any] = {}
    if path == "/labels":
        body = {"request_id": "req-1", "label": 1}
    elif path == "/models/promote":
        body = {"version": 1, "reason": "test"}
    return client.post(path, json=body, headers=headers)


def _report_id(client: TestClient) -> int:
    r = client.get("/reports", headers=bearer(READ))
    return int(r.json()["items"][0]["id"])


PROTECTED: list[tuple[Permission, str, str, int]] = [
    (Permission.READ, "GET", "/predictions", 200),
    (Permission.READ, "GET", "/reports", 200),
    (Permission.READ, "GET", "/reports/latest", 200),
    (Permission.READ, "GET", "/reports/{id}", 200),
    (Permission.READ, "GET", "/alerts", 200),
    (Permission.READ, "GET", "/audit", 200),
    (Permission.READ, "GET", "/dashboard/state", 200),
    (Permission.LABELS, "POST", "/labels", 200),
    (Permission.ADMIN, "POST", "/models/reload", 200),
    (Permission.ADMIN, "POST", "/models/promote", 200),
    (Permission.ADMIN, "POST", "/reports/run", 200),
]
OWN = {Permission.ADMIN: ADMIN, Permission.LABELS: LABELS, Permission.READ: READ}


def test_each_permission_is_enforced_on_each_protected_route(client: TestClient) -> None:
    report = _report_id(client)
    for permission, method, template, ok in PROTECTED:
        path = template.replace("{id}", str(report))
        where = f"{method} {path}"
        r = _call(client, method, path, {})
        assert r.status_code == 401, where
        assert r.headers["www-authenticate"] == "Bearer", where
        assert "no token" in r.json()["detail"], where
        wrongs = ("Bearer ", "Bearer not-the-token-0123456789", f"Bearer {READ}x", "Basic a", READ)
        for wrong in wrongs:
            r = _call(client, method, path, {"Authorization": wrong})
            assert r.status_code == 401, (where, wrong)
        for other, token in OWN.items():
            if other not in (permission, Permission.ADMIN):
                r = _call(client, method, path, bearer(token))
                assert r.status_code == 403, (where, other)
                assert "this token may not" in r.json()["detail"], where
        r = _call(client, method, path, bearer(OWN[permission]))
        assert r.status_code == ok, (where, r.text)
        r = _call(client, method, path, bearer(ADMIN))  # the admin token grants everything
        assert r.status_code == ok, (where, r.text)


def test_the_websocket_needs_the_read_token_by_header_or_subprotocol(client: TestClient) -> None:
    attempts: list[tuple[dict[str, str], list[str], int]] = [
        ({}, [], 401),
        (bearer("not-the-token-0123456789"), [], 401),
        ({}, ["driftline", ws_protocol("not-the-token-0123456789")], 401),
        ({}, ["driftline", "driftline.bearer.!!not-base64!!"], 401),
        (bearer(LABELS), [], 403),
        ({}, ["driftline", ws_protocol(LABELS)], 403),
    ]
    for headers, protocols, status in attempts:
        with (
            pytest.raises(WebSocketDenialResponse) as info,
            client.websocket_connect("/ws", headers=headers, subprotocols=protocols),
        ):
            pass
        assert info.value.status_code == status, (headers, protocols)
    for token in (READ, ADMIN):
        with client.websocket_connect("/ws", headers=bearer(token)) as ws:
            assert ws.receive_json()["type"] == "hello"
        with client.websocket_connect("/ws", subprotocols=["driftline", ws_protocol(token)]) as ws:
            assert ws.accepted_subprotocol == "driftline"  # never the one carrying the token
            assert ws.receive_json()["type"] == "hello"
            r = client.post("/predict", json={"features": row(1), "request_id": "live-1"})
            assert r.status_code == 200
            event = ws.receive_json()
            while event["type"] != "prediction":
                event = ws.receive_json()
            assert event["request_id"] == "live-1"


def test_a_non_ascii_authorization_header_is_a_400_not_a_500(client: TestClient) -> None:
    """A malformed header is refused at the edge (service/edge.py) with a 400 that names it,
    before any permission is checked; the WebSocket handshake answers 401."""
    header = {"Authorization": "Bearer tökén-0123456789-é".encode()}
    for method, path in (("POST", "/models/reload"), ("POST", "/labels"), ("GET", "/audit")):
        r = _call(client, method, path, header)
        assert r.status_code == 400, (path, r.text)
        assert "Authorization header" in r.json()["detail"]
    latin1 = {"Authorization": b"Bearer \xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9"}
    assert client.post("/models/reload", headers=latin1).status_code == 400
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        client.websocket_connect("/ws", headers=header),
    ):
        pass
    assert info.value.status_code == 401


def test_serving_health_metrics_and_the_dashboard_page_stay_open(client: TestClient) -> None:
    assert client.post("/predict", json={"features": row(2)}).status_code == 200
    r = client.post("/predict/batch", json={"instances": [{"features": row(3)}]})
    assert r.status_code == 200
    for path in ("/health", "/ready", "/metrics", "/models", "/openapi.json", "/dashboard"):
        assert client.get(path).status_code == 200, path
    assert client.get("/dashboard/assets/dashboard.js").status_code == 200
    assert client.get("/rollout").status_code == 404  # no rollout yet, but no 401
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert {"adminToken", "labelsToken", "readToken"} <= set(schemes)


def test_labels_cannot_be_overwritten_without_the_labels_token(client: TestClient) -> None:
    def label() -> int | None:
        items = client.get("/predictions", headers=bearer(READ)).json()["items"]
        (item,) = [i for i in items if i["request_id"] == "req-1"]
        return item["label"]  # type: ignore[no-any-return]

    r = client.post("/labels", json={"request_id": "req-1", "label": 1}, headers=bearer(LABELS))
    assert r.status_code == 200 and r.json()["durable"]
    assert label() == 1
    for headers in ({}, bearer(READ), bearer("an-attacker-guess-0123456789")):
        r = client.post("/labels", json={"request_id": "req-1", "label": 0}, headers=headers)
        assert r.status_code in (401, 403)
        bulk = {"labels": [{"request_id": "req-1", "label": 0}]}
        assert client.post("/labels", json=bulk, headers=headers).status_code in (401, 403)
    assert label() == 1
    r = client.post("/labels", json={"request_id": "req-1", "label": 0}, headers=bearer(LABELS))
    assert r.status_code == 200 and r.json()["durable"]
    assert label() == 0


def test_without_labels_and_read_tokens_those_stay_open_on_loopback(
    settings: Settings, trained_bundle: ModelBundle
) -> None:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    only_admin = settings.model_copy(update={"scheduler": False, "admin_token": SecretStr(ADMIN)})
    with TestClient(create_app(only_admin)) as c:
        assert c.post("/labels", json={"request_id": "a", "label": 1}).status_code == 200
        assert c.get("/predictions").status_code == 200
        assert c.get("/dashboard/state").status_code == 200
        with c.websocket_connect("/ws") as ws:
            assert ws.receive_json()["type"] == "hello"
        assert c.post("/models/reload").status_code == 401  # admin is never open


def test_tokens_are_compared_in_constant_time_as_bytes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(deps_module.hmac, "compare_digest", spy)
    secured = settings.model_copy(
        update={
            "admin_token": SecretStr(ADMIN),
            "labels_token": SecretStr(LABELS),
            "read_token": SecretStr(READ),
        }
    )
    assert granted(secured, READ.encode()) == {Permission.READ}
    # Every configured token is compared, whatever matched before, and always as bytes.
    assert sorted(b for _, b in calls) == sorted(t.encode() for t in (ADMIN, LABELS, READ))
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)
    assert granted(secured, ADMIN.encode()) == set(Permission)
    assert granted(secured, "tökén".encode()) == set()
    assert granted(secured, None) == set()


def test_subprotocol_token_decodes_base64url_and_treats_garbage_as_a_wrong_token() -> None:
    token = "a+b/c=d?e-0123456789"
    assert subprotocol_token(["driftline", ws_protocol(token)]) == token.encode()
    assert subprotocol_token(["driftline.bearer.***"]) == b""
    assert subprotocol_token(["driftline", "other"]) is None


def test_the_demo_sends_the_tokens_set_in_the_environment(settings: Settings) -> None:
    from rich.console import Console

    from driftline.demo import DemoOptions, run_demo

    secured = settings.model_copy(
        update={"labels_token": SecretStr(LABELS), "read_token": SecretStr(READ)}
    )
    options = DemoOptions(
        duration=4,
        rate=40,
        port=free_port(),
        train_rows=3_000,
        label_delay=0.5,
        model="logreg",
        monitor_every=1.0,
        loop=False,
    )
    stats = run_demo(secured, options, Console(record=True, width=120))
    # How many requests fit in 4 s depends on the machine's load; what this test is about is
    # that none of them was refused for a missing token (a 401/403 counts as an error).
    assert stats.ok > 0 and stats.errors == 0
    assert stats.labels_sent == stats.ok  # POST /labels with the labels token
    assert stats.latest_report is not None  # GET /reports/latest with the read token
