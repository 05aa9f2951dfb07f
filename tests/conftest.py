"""Shared fixtures: settings in a temporary home, real PostgreSQL databases (created and dropped
per test), a trained model, and an MLflow registry that is cheap to create per test."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.config import Settings
from driftline.data.synthetic import TARGET, generate_loans
from driftline.models.bundle import ModelBundle
from driftline.registry import Registry
from driftline.store import Store, open_store
from driftline.training import train_model
from tests.support import alone

#: Latency bounds that no functional test can reach, even beside ``stress-ng --cpu 2``: tests
#: of the closed loop judge accuracy and the stages; the latency verdicts themselves are pure
#: functions tested with fixed numbers and ratios (tests/loop/test_decisions.py).
LATENCY_NEVER_DECIDES: dict[str, float] = {
    "gate_max_latency_ms": 60_000.0,
    "gate_max_latency_ratio": 1_000_000.0,
    "slo_max_p95_latency_ms": 60_000.0,
    "slo_max_p95_latency_ratio": 1_000_000.0,
}

#: Tests that must run in one process, in file order: a path part → the group's name.
ONE_WORKER_GROUPS = {
    # One local Ray instance per process (tests/on_ray/conftest.py): Ray tests on two workers
    # started two clusters, and `serve --engine ray` joining one of them shut down the other
    # test's Serve proxies.
    "on_ray": "ray",
    # Share one `host watch` process (a module fixture); a later test reads what the SIGTERM
    # test left behind.
    "test_host_watch_cli.py": "host-watch",
}


_alone_tests = pytest.StashKey[int]()

#: Seconds a ``slow`` test may take before pytest-timeout stops it (see below).
SLOW_TEST_TIMEOUT = 600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``alone`` go first (the others wait for them: ``tests/support/alone.py``),
    then those marked ``slow`` (end to end, minutes each): on the xdist workers (``-n 3`` in
    ``addopts``) these overlap with the many short ones instead of starting last and
    lengthening the run."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker(alone.MARK) is None,
            item.get_closest_marker("slow") is None,
        )
    )  # stable
    config.stash[_alone_tests] = sum(1 for i in items if i.get_closest_marker(alone.MARK))
    # The hang guard of an end-to-end test: servers, brokers and subprocesses start in seconds
    # on an idle machine and in minutes on 2 cores shared with other work (the suite must pass
    # beside `stress-ng --cpu 2`); pyproject's 300 s stays the guard of every other test.
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: every worker learns the folder the ``alone`` gate shares."""
    config = node.config
    if not hasattr(config, "_driftline_alone_dir"):
        config._driftline_alone_dir = Path(tempfile.mkdtemp(prefix="driftline-alone-"))
    alone.configure_node(node, config._driftline_alone_dir)


@pytest.hookimpl(tryfirst=True)  # before any fixture of the item is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    alone.before_setup(item, item.config.stash.get(_alone_tests, 0))


@pytest.hookimpl(trylast=True)  # after its fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item) -> None:
    alone.after_teardown(item)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scheduler that keeps each of :data:`ONE_WORKER_GROUPS` on one worker and hands
    out every other test alone, in collection order (slow tests first).

    Not ``--dist loadgroup``: with pytest 9.2 its ``xdist_group`` marks are silently ignored
    (xdist 3.8 renames node ids through a field pytest no longer reads:
    pytest-dev/pytest-xdist#1386), so the grouping is done here, by path.
    """
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerGroups(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            parts = Path(nodeid.split("::", 1)[0]).parts
            for part, group in ONE_WORKER_GROUPS.items():
                if part in parts:
                    return group
            return nodeid

    return OneWorkerGroups(config, log)


PG_ADMIN_URL = os.environ.get(
    "DRIFTLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0]


@functools.cache
def pg_problem() -> str | None:
    """Asked once per test run."""
    return _pg_available()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on 127.0.0.1:5432, dropped afterwards."""
    problem = pg_problem()
    if problem is not None:
        if os.environ.get("CI") or os.environ.get("DRIFTLINE_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 unreachable: {problem}")
    import psycopg

    name = f"driftline_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store URL of each supported backend, empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def loans() -> object:
    return generate_loans(3_000, seed=11)


@pytest.fixture(scope="session")
def trained_bundle(loans: object) -> ModelBundle:
    import pandas as pd

    assert isinstance(loans, pd.DataFrame)
    return train_model(loans, TARGET, kind="logreg", seed=0).bundle


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty MLflow SQLite store: copying it saves ~2 s of migrations a test."""
    folder = tmp_path_factory.mktemp("mlflow-template")
    settings = Settings(home=folder)
    settings.ensure_home()
    s = open_store(settings.database_url)
    registry = Registry.from_settings(settings, s)
    registry.aliases()  # creates the MLflow tables
    registry.client.search_experiments()
    s.dispose()
    return folder / "mlflow.db"


@pytest.fixture
def settings(tmp_path: Path, mlflow_template: Path) -> Settings:
    """Settings in a temporary home with a ready MLflow store and a SQLite store."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    s = Settings(home=home, reload_poll_seconds=0.2, flush_interval_seconds=0.2)
    s.ensure_home()
    return s


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    s = open_store(settings.database_url)
    yield Registry.from_settings(settings, s)
    s.dispose()


@pytest.fixture
def spans() -> Iterator[object]:
    """driftline's spans go to an in-memory exporter for the test (the `tracing` extra)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from driftline import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    yield exporter
    tracing.set_tracer_provider(None)
    provider.shutdown()
