"""Schemathesis over every operation of ``/openapi.json``, against a real ``driftline serve`` on
127.0.0.1 storing in PostgreSQL (the strictest store): valid and invalid inputs (seeded, a
bounded number per operation) must never give a 5xx, and every answer must match the schema
the operation declares.

Admin operations are exercised too: the server has an admin token, and every other case sends
it (the others keep the Authorization header schemathesis made up, valid or not).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import psycopg
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.store import open_store
from tests.conftest import PG_ADMIN_URL, pg_problem
from tests.support.servers import serve_subprocess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
#: Cases per operation and generation mode (valid, invalid); ~24 operations: well under 3 min.
MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

_turn = itertools.count()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """PostgreSQL, the store that refuses the most (NUL characters, out-of-range integers)."""
    problem = pg_problem()
    if problem is not None:
        if os.environ.get("CI") or os.environ.get("DRIFTLINE_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 unreachable: {problem}")
    name = f"driftline_fuzz_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server_url(
    tmp_path_factory: pytest.TempPathFactory,
    mlflow_template: Path,
    trained_bundle: ModelBundle,
    store_url: str,
) -> Iterator[str]:
    """A server with a champion, an admin token and a small body cap (so 413s happen too)."""
    home = tmp_path_factory.mktemp("fuzz-home")
    (home / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    settings = Settings(home=home, database_url=store_url)
    settings.ensure_home()
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    env = {
        "DRIFTLINE_DATABASE_URL": store_url,
        "DRIFTLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "DRIFTLINE_MAX_BODY_BYTES": "65536",
        "DRIFTLINE_MONITOR_INTERVAL_SECONDS": "3600",
    }
    with serve_subprocess(home, env=env) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(server_url: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{server_url}/openapi.json")
    schema.config.update(base_url=server_url)
    return schema


def _header_names(operation: Any) -> set[str]:
    return {p.name.lower() for p in operation.headers}


def _headers(case: Any) -> dict[str, str] | None:
    """The admin token on every other case of an operation that takes one."""
    if "authorization" in _header_names(case.operation) and next(_turn) % 2 == 0:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return None


def _fuzz(
    operation: Any, mode: GenerationMode, failures: dict[str, str], statuses: set[int]
) -> None:
    """Run the cases of one operation; record the first failure (its check and a curl line)
    and the status codes seen."""
    label = f"{operation.label} ({mode.value})"

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # seeded: the same cases on every run
        database=None,  # and no replay of an earlier run's cases
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        if label in failures:
            return  # one reproduction per operation is enough
        try:
            response = case.call(headers=_headers(case), timeout=30)
            statuses.add(response.status_code)
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # failed checks, a dropped connection
            failures[label] = f"{exc}\n  reproduce: {case.as_curl_command()}"

    try:
        check()
    except hypothesis.errors.Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # An operation without parameters or body (GET /health) has no invalid input.


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gives_a_5xx_or_breaks_the_declared_schema(
    api_schema: Any, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20  # every operation of the document, not a subset
    failures: dict[str, str] = {}
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        _fuzz(operation, mode, failures, statuses.setdefault(operation.label, set()))
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
    if mode is GenerationMode.POSITIVE:
        assert all(statuses.values()), statuses  # every operation was called
        # the admin token works: every admin operation got past the token check
        admin = [op.label for op in operations if "authorization" in _header_names(op)]
        assert admin
        stuck = {label: statuses[label] for label in admin if statuses[label] <= {401, 403}}
        assert not stuck, stuck


@pytest.mark.parametrize("bad", ["a\r\nb", "a\x00b", "日本"])
def test_a_request_id_a_header_cannot_carry_is_a_422_from_a_real_server(
    server_url: str, bad: str
) -> None:
    """Before, uvicorn dropped the connection (CR, LF, NUL: an invalid X-Request-ID echo) or
    answered 500 (beyond latin-1)."""
    body = {"features": {"age": 1}, "request_id": bad}
    r = httpx.post(f"{server_url}/predict", json=body, timeout=10)
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "request_id"]]
