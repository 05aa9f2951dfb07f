"""Feast on this machine's real services: a Redis online store on 127.0.0.1:6379 and a Parquet
(file) offline store. ``feast apply`` and ``feast materialize`` run for real, through Feast's
CLI in the end-to-end test and its Python API in the module fixture.

Each test run gets its own Feast project (Redis keys carry the project name, so runs and
tests never read each other's rows); the online rows are removed at the end (``teardown``).
The module fixture is applied and materialized once and only read by the tests that use it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from driftline.cli import app as cli_app
from driftline.config import Settings
from driftline.errors import EntityNotFoundError, FeatureStoreUnavailableError
from driftline.featurestore import FeastSpec, FeatureRepo, training_table
from driftline.models.bundle import ModelBundle
from driftline.registry import Registry
from driftline.service import create_app
from driftline.service.lookup import FeastLookup
from driftline.store import open_store, queries

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "feast"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
FEATURES = ("txn_count_7d", "avg_amount_7d", "tickets_30d")


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is required in CI (pip install -e '.[dev]')")
        pytest.skip(f"{module} not installed (pip install 'driftline[feast]')")


def _need_redis() -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis required in CI but unreachable: {exc}")
        pytest.skip(f"Redis on {REDIS_HOST}:{REDIS_PORT} unreachable: {exc}")
    finally:
        client.close()


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "driftline_feast_example", EXAMPLE / "generate_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def make_repo(folder: Path, *, project: str | None = None, port: int = REDIS_PORT) -> Path:
    """A copy of the example repository with its own project name (and Redis port)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "feature_repo" / "definitions.py", folder / "definitions.py")
    text = (EXAMPLE / "feature_repo" / "feature_store.yaml").read_text()
    project = project or f"driftline_test_{uuid.uuid4().hex[:10]}"
    text = re.sub(r"(?m)^project: .*$", f"project: {project}", text)
    text = text.replace(f"{REDIS_HOST}:{REDIS_PORT},", f"{REDIS_HOST}:{port},")
    (folder / "feature_store.yaml").write_text(text)
    return folder


def point_at(repo: Path, folder: Path, port: int) -> Path:
    """Another repository over the same registry and files, its online store on ``port``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (repo / "feature_store.yaml").read_text()
    text = text.replace(f"{REDIS_HOST}:{REDIS_PORT},", f"{REDIS_HOST}:{port},")
    text = text.replace("registry: data/registry.db", f"registry: {repo / 'data/registry.db'}")
    (folder / "feature_store.yaml").write_text(text)
    return folder


def latest(stats: pd.DataFrame, customer_id: int) -> dict[str, Any]:
    rows = stats[stats["customer_id"] == customer_id].sort_values("event_timestamp")
    last = rows.iloc[-1]
    return {f: last[f].item() for f in FEATURES}


def feast_cli(repo: Path, *args: str) -> str:
    feast = Path(sys.executable).parent / "feast"
    command = [str(feast)] if feast.exists() else [sys.executable, "-m", "feast.cli.cli"]
    done = subprocess.run(
        [*command, "--chdir", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def teardown(repo: Path) -> None:
    FeatureRepo(repo).store.teardown()


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An example repository, applied and materialized once (Python API)."""
    _need("feast")
    _need_redis()
    repo = make_repo(tmp_path_factory.mktemp("feast") / "repo")
    _generator().generate(repo, customers=60, days=20, events=600, seed=3)
    # Through driftline's opener: importing Feast must not turn this process's Prometheus
    # client to multiprocess mode (the serving tests read /metrics).
    store = FeatureRepo(repo).store
    definitions = _generator_definitions(repo)
    store.apply([definitions.customer, definitions.customer_stats])
    store.materialize(start_date=datetime.now(UTC) - timedelta(days=60), end_date=datetime.now(UTC))
    yield repo
    store.teardown()


def _generator_definitions(repo: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"defs_{uuid.uuid4().hex[:8]}", repo / "definitions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    cwd = Path.cwd()
    os.chdir(repo)  # FileSource paths are relative to the repository
    try:
        spec.loader.exec_module(module)
    finally:
        os.chdir(cwd)
    return module


# --- the pieces, on one applied repository -----------------------------------------------------


def test_spec_comes_from_the_registry(applied: Path) -> None:
    spec = FeatureRepo(applied).spec_for(["customer_id"])
    assert spec.entities == ("customer_id",)
    assert dict(spec.views) == {"customer_stats": FEATURES}
    assert spec.key_types == {"customer_id": "int"}
    assert spec.refs == tuple(f"customer_stats:{f}" for f in FEATURES)
    with pytest.raises(Exception, match="not in the Feast registry"):
        FeatureRepo(applied).spec_for(["customer_id"], ["no_such_view"])
    # Opening Feast left this process's Prometheus client alone.
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_training_table_is_point_in_time_correct(applied: Path) -> None:
    stats = pd.read_parquet(applied / "data" / "customer_stats.parquet")
    entities = pd.read_parquet(applied / "data" / "entities.parquet")
    table = training_table(FeatureRepo(applied), entities, entities=["customer_id"])
    # Every event falls after the first snapshot, within the TTL: no row is dropped.
    assert table.dropped == 0 and len(table.frame) == len(entities)
    assert list(table.frame.columns) == ["channel", "churned", *FEATURES]
    # The same join done independently: the last snapshot at or before each event.
    ns = "datetime64[ns, UTC]"
    expected = pd.merge_asof(
        entities.assign(event_timestamp=entities["event_timestamp"].astype(ns))
        .reset_index()
        .sort_values("event_timestamp"),
        stats.assign(event_timestamp=stats["event_timestamp"].astype(ns)).sort_values(
            "event_timestamp"
        ),
        on="event_timestamp",
        by="customer_id",
    ).sort_values("index")
    for feature in FEATURES:
        assert table.frame[feature].tolist() == pytest.approx(expected[feature].tolist())
    # ... and not the latest values, which a naive join would give.
    last = stats.sort_values("event_timestamp").groupby("customer_id").last()
    naive = entities["customer_id"].map(last["txn_count_7d"])
    assert (naive.to_numpy() != table.frame["txn_count_7d"].to_numpy()).mean() > 0.5


def test_online_fetch_returns_the_latest_values_and_names_a_missing_entity(
    applied: Path,
) -> None:
    stats = pd.read_parquet(applied / "data" / "customer_stats.parquet")
    repo = FeatureRepo(applied)
    spec = repo.spec_for(["customer_id"])
    first, missing, second = repo.fetch(
        spec, [{"customer_id": 7}, {"customer_id": 999_999}, {"customer_id": 12}]
    )
    assert first == pytest.approx(latest(stats, 7))
    assert second == pytest.approx(latest(stats, 12))
    assert isinstance(missing, EntityNotFoundError)
    assert "customer_id=999999" in str(missing) and "customer_stats" in str(missing)


def test_online_store_down_is_an_outage_not_a_partial_answer(applied: Path, tmp_path: Path) -> None:
    down = FeatureRepo(point_at(applied, tmp_path / "down", closed_port()))
    spec = FeastSpec.from_meta(FeatureRepo(applied).spec_for(["customer_id"]).to_meta())
    with pytest.raises(FeatureStoreUnavailableError, match="cannot be reached"):
        down.fetch(spec, [{"customer_id": 7}])


def test_concurrent_lookups_share_feast_calls_off_the_event_loop(applied: Path, spans: Any) -> None:
    stats = pd.read_parquet(applied / "data" / "customer_stats.parquet")
    repo = FeatureRepo(applied)
    spec = repo.spec_for(["customer_id"])
    calls: list[tuple[str, int]] = []
    lookup = FeastLookup(repo, on_lookup=lambda _s, outcome, rows: calls.append((outcome, rows)))

    async def run() -> list[list[dict[str, Any]]]:
        await lookup.start()
        try:
            return await asyncio.gather(
                *(lookup.fetch(spec, [{"customer_id": n}]) for n in range(1, 21))
            )
        finally:
            await lookup.stop()

    answers = asyncio.run(run())
    for n, [values] in enumerate(answers, start=1):
        assert values == pytest.approx(latest(stats, n))
    assert sum(rows for _, rows in calls) == 20
    assert len(calls) < 20 and {outcome for outcome, _ in calls} == {"ok"}
    names = [s.name for s in spans.get_finished_spans()]
    assert names.count("driftline.feast.lookup") == 20


# --- serving without Feast features --------------------------------------------------------------


def test_entities_for_a_model_without_feast_features_are_refused(
    settings: Settings, trained_bundle: ModelBundle
) -> None:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    with TestClient(create_app(settings)) as client:
        r = client.post("/predict", json={"entities": {"customer_id": 1}})
        assert r.status_code == 422
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "entities"]
        assert "not trained from Feast" in error["msg"]
        r = client.post("/predict", json={})
        assert r.status_code == 422 and "features, entities, or both" in r.text


# --- end to end: feast apply → materialize → train → serve → predict → logged ------------------


def test_feast_end_to_end_from_apply_to_a_logged_prediction(
    settings: Settings, tmp_path: Path
) -> None:
    _need("feast")
    _need_redis()
    repo = make_repo(tmp_path / "repo")
    _generator().generate(repo, customers=80, days=20, events=900, seed=5)
    feast_cli(repo, "apply")
    try:
        feast_cli(repo, "materialize-incremental", datetime.now(UTC).isoformat(timespec="seconds"))
        _serve_from_feast(settings, repo, tmp_path)
    finally:
        teardown(repo)


def _serve_from_feast(settings: Settings, repo: Path, tmp_path: Path) -> None:
    stats = pd.read_parquet(repo / "data" / "customer_stats.parquet")
    result = CliRunner().invoke(
        cli_app,
        [
            "--home",
            str(settings.home),
            "train",
            str(repo / "data" / "entities.parquet"),
            "--target",
            "churned",
            "--model",
            "logreg",
            "--feast-repo",
            str(repo),
            "--entity",
            "customer_id",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "customer_stats (3)" in result.output and "version 1" in result.output
    store = open_store(settings.database_url)
    bundle = Registry.from_settings(settings, store).load(1)
    store.dispose()
    assert bundle.meta["feast"]["feature_views"] == {"customer_stats": list(FEATURES)}
    assert bundle.meta["feast"]["entities"] == ["customer_id"]
    assert sorted(bundle.schema.names) == sorted(["channel", *FEATURES])

    serving = settings.model_copy(update={"feast_repo": repo})
    with TestClient(create_app(serving)) as client:
        r = client.post(
            "/predict",
            json={
                "entities": {"customer_id": 5},
                "features": {"channel": "app"},
                "request_id": "a",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["prediction"] in ("yes", "no")
        # Inline features win over fetched ones.
        r = client.post(
            "/predict",
            json={
                "entities": {"customer_id": 5},
                "features": {"channel": "web", "tickets_30d": 0},
                "request_id": "b",
            },
        )
        assert r.status_code == 200, r.text
        r = client.post(
            "/predict/batch",
            json={
                "instances": [
                    {
                        "entities": {"customer_id": 9},
                        "features": {"channel": "branch"},
                        "request_id": "c",
                    },
                    {"features": {"channel": "web", **latest(stats, 9)}, "request_id": "d"},
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert [p["request_id"] for p in r.json()["predictions"]] == ["c", "d"]
        # Unknown entity: 404 naming it; a missing or mistyped key: 422 naming the field.
        r = client.post(
            "/predict", json={"entities": {"customer_id": 999_999}, "features": {"channel": "app"}}
        )
        assert r.status_code == 404 and "customer_id=999999" in r.json()["detail"]
        r = client.post("/predict", json={"entities": {"customer": 5}, "features": {}})
        assert r.status_code == 422
        locs = [e["loc"] for e in r.json()["detail"]]
        assert ["body", "entities", "customer_id"] in locs
        assert ["body", "entities", "customer"] in locs
        r = client.post("/predict", json={"entities": {"customer_id": "5"}})
        assert r.status_code == 422 and "must be an integer" in r.text
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        assert runtime.writer.flush(10)
        metrics = client.get("/metrics").text
    assert re.search(r'driftline_feast_lookup_seconds_count\{outcome="ok"\} [1-9]', metrics)
    assert re.search(r'driftline_feast_lookup_seconds_count\{outcome="not_found"\} 1', metrics)

    store = open_store(settings.database_url)
    with store.sessions() as session:
        page = queries.list_predictions(session=session, limit=100)
        logged = {p["request_id"]: p["features"] for p in page.items}
    store.dispose()
    assert logged["a"] == pytest.approx({"channel": "app", **latest(stats, 5)})
    assert logged["b"] == pytest.approx({"channel": "web", **latest(stats, 5), "tickets_30d": 0})
    assert logged["c"] == pytest.approx({"channel": "branch", **latest(stats, 9)})
    assert logged["d"] == pytest.approx({"channel": "web", **latest(stats, 9)})
    assert len(logged) == 4  # refused requests predict nothing


def test_feast_outage_answers_503_and_predicts_nothing(
    applied: Path, settings: Settings, tmp_path: Path
) -> None:
    spec = FeatureRepo(applied).spec_for(["customer_id"])
    entities = pd.read_parquet(applied / "data" / "entities.parquet")
    table = training_table(FeatureRepo(applied), entities, entities=["customer_id"])
    from driftline.training import train_model

    bundle = train_model(table.frame, "churned", kind="logreg").bundle
    bundle.meta["feast"] = spec.to_meta()
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(bundle, actor="test")
    store.dispose()
    down = point_at(applied, tmp_path / "down", closed_port())
    with TestClient(create_app(settings.model_copy(update={"feast_repo": down}))) as client:
        r = client.post(
            "/predict", json={"entities": {"customer_id": 3}, "features": {"channel": "app"}}
        )
        assert r.status_code == 503, r.text
        assert "Feast online store cannot be reached" in r.json()["detail"]
        assert r.headers["retry-after"] == "1"
        # Sending every feature inline still works: only lookups need the online store.
        full = {"channel": "app", "txn_count_7d": 3, "avg_amount_7d": 40.0, "tickets_30d": 1}
        assert client.post("/predict", json={"features": full}).status_code == 200
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        assert runtime.writer.flush(10)
        metrics = client.get("/metrics").text
    assert re.search(r'driftline_feast_lookup_seconds_count\{outcome="error"\} 1', metrics)
    store = open_store(settings.database_url)
    with store.sessions() as session:
        page = queries.list_predictions(session=session, limit=10)
    store.dispose()
    assert [p["features"] for p in page.items] == [full]
