"""deploy/compose.yaml: valid against the Compose Specification's JSON schema (the official
compose-spec.json as vendored by check-jsonschema), every driftline and MLflow command parsed
by the real CLI, the Prometheus config checked by promtool, and the stack's own commands run as
processes against a real PostgreSQL (no container engine runs here)."""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import typer
import yaml

from driftline.cli import app
from driftline.data.synthetic import TARGET, generate_loans
from tests.conftest import PG_ADMIN_URL
from tests.deploy.deploytools import (
    DEPLOY,
    ROOT,
    exec_form,
    interpolate,
    parse_command,
    stages,
    uvicorn_graceful_seconds,
)
from tests.support.promtools import require_binary
from tests.support.servers import free_port

COMPOSE = DEPLOY / "compose.yaml"
TOKENS = {
    "DRIFTLINE_ADMIN_TOKEN": "compose-admin-token-0123456789",
    "DRIFTLINE_LABELS_TOKEN": "compose-labels-token-0123456789",
    "DRIFTLINE_READ_TOKEN": "compose-read-token-0123456789",
    "POSTGRES_PASSWORD": "secret",
}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def validation_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        compose_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def driftline_services() -> dict[str, dict[str, Any]]:
    """Services that run the driftline image with its own entry point."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == "driftline:latest" and "entrypoint" not in service
    }


def image_entrypoint() -> list[str]:
    return exec_form(stages()[-1].values("ENTRYPOINT")[0])


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    document = compose()
    assert compose_schema()["title"] == "Compose Specification"
    assert validation_errors(document) == []
    # the validator is live: a misspelt key and a wrong type are both caught
    broken = copy.deepcopy(document)
    broken["services"]["api-1"]["comand"] = broken["services"]["api-1"].pop("command")
    broken["services"]["api-2"]["ports"] = 8002
    errors = validation_errors(broken)
    assert any("comand" in e for e in errors) and any("api-2/ports" in e for e in errors)


def test_the_production_shape_is_there() -> None:
    services = compose()["services"]
    assert {"postgres", "mlflow", "migrate", "redis", "prometheus", "grafana", "scheduler"} <= set(
        services
    )
    serving = {n for n, s in driftline_services().items() if s["command"][0] == "serve"}
    assert serving == {"api-1", "api-2", "scheduler"}
    for name in ("api-1", "api-2"):
        assert services[name]["environment"]["DRIFTLINE_SCHEDULER"] == "false"
    assert services["scheduler"]["environment"]["DRIFTLINE_SCHEDULER"] == "true"
    # every driftline process shares one store, one registry, and takes its tokens from the env
    for name, service in driftline_services().items():
        env = service["environment"]
        assert "@postgres:5432/driftline" in env["DRIFTLINE_DATABASE_URL"], name
        assert env["DRIFTLINE_MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        for token in ("DRIFTLINE_ADMIN_TOKEN", "DRIFTLINE_LABELS_TOKEN", "DRIFTLINE_READ_TOKEN"):
            assert env[token].startswith(f"${{{token}:?"), (name, token)
    mlflow = services["mlflow"]["command"]
    assert mlflow[mlflow.index("--backend-store-uri") + 1].endswith("@postgres:5432/mlflow")
    artifacts = mlflow[mlflow.index("--artifacts-destination") + 1]
    (volume,) = services["mlflow"]["volumes"]
    assert artifacts.startswith(volume.split(":")[1])  # artifacts on a named volume
    # each replica keeps its own home (spill log, model cache) on its own volume
    homes = [services[n]["volumes"][0].split(":")[0] for n in ("api-1", "api-2", "scheduler")]
    assert len(set(homes)) == 3 and set(homes) <= set(compose()["volumes"])
    assert "CREATE DATABASE mlflow" in (DEPLOY / "compose/postgres-init.sql").read_text()


def test_every_command_parses_with_the_real_cli() -> None:
    assert image_entrypoint() == ["driftline"]
    group = typer.main.get_command(app)
    parsed = {
        name: parse_command(group, service["command"], name="driftline")
        for name, service in driftline_services().items()
    }
    assert parsed["api-1"]["host"] == "0.0.0.0" and parsed["api-1"]["port"] == 8000
    assert parsed["consumer"]["consumer"] == "consumer-1"
    service = compose()["services"]["mlflow"]
    assert service["entrypoint"] == ["mlflow"]
    with warnings.catch_warnings():  # MLflow's import warns about SQLAlchemy deprecations
        warnings.simplefilter("ignore")
        from mlflow.cli import cli as mlflow_cli

    command = [interpolate(word, TOKENS) for word in service["command"]]
    params = parse_command(mlflow_cli, command, name="mlflow")
    assert params["serve_artifacts"] is True and params["port"] == 5000
    # the published ports lead to the ports the processes listen on
    for name in ("api-1", "api-2", "scheduler"):
        (mapping,) = compose()["services"][name]["ports"]
        assert mapping.split(":")[1] == str(parsed[name]["port"])


def test_prometheus_and_grafana_inside_compose(tmp_path: Path) -> None:
    services = compose()["services"]
    mounts = dict(reversed(v.split(":")[:2]) for v in services["prometheus"]["volumes"])
    config = yaml.safe_load((DEPLOY / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "driftline"  # what DriftlineTargetDown looks for
    (targets,) = (c["targets"] for c in job["static_configs"])
    assert sorted(targets) == ["api-1:8000", "api-2:8000", "scheduler:8000"]
    # promtool checks the config with the rules beside it, as they are mounted
    for container, host in mounts.items():
        if container.startswith("/etc/prometheus/"):
            shutil.copy(DEPLOY / host, tmp_path / Path(container).name)
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    # Grafana's datasource inside compose is the provisioned one, reaching Prometheus by name
    gmounts = dict(reversed(v.split(":")[:2]) for v in services["grafana"]["volumes"])
    inside = yaml.safe_load(
        (DEPLOY / gmounts["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text()
    )
    host = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (a,), (b,) = inside["datasources"], host["datasources"]
    assert a["url"] == "http://prometheus:9090" and {**a, "url": b["url"]} == b


# --- the stack's commands, run as processes -------------------------------------------------


@contextmanager
def _database() -> Iterator[str]:
    import psycopg

    name = f"driftline_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _service_env(name: str, addresses: dict[str, str]) -> dict[str, str]:
    """The service's environment as Compose would give it, with the host names of the other
    services replaced by where this test runs them."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_") and k != "PYTHONPATH"
    }
    env["PYTHONPATH"] = os.pathsep.join(sys.path)  # this checkout's source, as the tests use
    for key, value in compose()["services"][name].get("environment", {}).items():
        env[key] = addresses.get(key, interpolate(str(value), TOKENS))
    return env


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} not up in time"
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _with_port(command: list[str], port: int) -> list[str]:
    out = list(command)
    out[out.index("--port") + 1] = str(port)
    return out


@pytest.mark.postgres
@pytest.mark.slow
# Four processes start (MLflow, migration, replica, leader): minutes on a busy machine.
@pytest.mark.timeout(900)
def test_the_stacks_commands_run_against_postgres(pg_url: str, tmp_path: Path) -> None:
    """migrate, the MLflow server, an API replica and the leader, each started with its compose
    command and environment; a model trained through the MLflow server serves on both, and both
    log into the one store."""
    services = compose()["services"]
    entry = [sys.executable, "-m", "driftline"]  # the image's `driftline` entry point
    with ExitStack() as stack:
        mlflow_db = stack.enter_context(_database())
        # MLflow server: its command with the backend, artifact folder and port of this test
        mlflow_port = free_port()
        command = [interpolate(w, TOKENS) for w in services["mlflow"]["command"]]
        command[command.index("--backend-store-uri") + 1] = mlflow_db
        command[command.index("--artifacts-destination") + 1] = str(tmp_path / "mlartifacts")
        command = _with_port(command, mlflow_port)
        # the processes below reach it as 127.0.0.1:PORT, not as mlflow:5000
        allowed = command.index("--allowed-hosts") + 1
        command[allowed] += f",127.0.0.1:{mlflow_port}"
        mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        log = tmp_path / "mlflow.log"
        mlflow_proc = _start([mlflow_bin, *command], _service_env("mlflow", {}), log)
        stack.callback(_stop, mlflow_proc)
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        _wait(f"{mlflow_url}/health", mlflow_proc, log, timeout=180)
        # the server accepts the Host header the driftline services send (--allowed-hosts)
        search = f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
        accepted = httpx.get(search, headers={"Host": "mlflow:5000"}, timeout=30)
        assert accepted.status_code == 200, accepted.text
        refused = httpx.get(search, headers={"Host": "elsewhere.example"}, timeout=30)
        assert refused.status_code == 403

        addresses = {
            "DRIFTLINE_DATABASE_URL": pg_url,
            "DRIFTLINE_MLFLOW_TRACKING_URI": mlflow_url,
            "DRIFTLINE_REDIS_URL": "redis://127.0.0.1:6379/0",
        }

        def env_of(name: str) -> dict[str, str]:
            home = tmp_path / name
            home.mkdir(exist_ok=True)
            return {
                **_service_env(name, addresses),
                "DRIFTLINE_HOME": str(home),
                "DRIFTLINE_RELOAD_POLL_SECONDS": "0.5",
                "DRIFTLINE_FLUSH_INTERVAL_SECONDS": "0.2",
            }

        migrate = subprocess.run(
            [*entry, *services["migrate"]["command"]],
            env=env_of("migrate"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert "migrated" in migrate.stdout

        urls = {}
        for name in ("api-1", "scheduler"):
            port = free_port()
            log = tmp_path / f"{name}.log"
            proc = _start([*entry, *_with_port(services[name]["command"], port)], env_of(name), log)
            stack.callback(_stop, proc)
            urls[name] = (f"http://127.0.0.1:{port}", proc, log)
        for url, proc, log in urls.values():
            _wait(f"{url}/health", proc, log)

        # a model trained and promoted through the MLflow server, from the leader's container
        data = tmp_path / "loans.csv"
        generate_loans(1_500, seed=3).to_csv(data, index=False)
        train = subprocess.run(
            [*entry, "train", str(data), "--target", TARGET, "--model", "logreg", "--promote"],
            env=env_of("scheduler"),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
        ids = {}
        row = generate_loans(5, seed=4).drop(columns=[TARGET]).iloc[0].to_dict()
        for name, (url, proc, log) in urls.items():
            _wait(f"{url}/ready", proc, log)
            r = httpx.post(
                f"{url}/predict",
                json={"request_id": f"compose-{name}", "features": row},
                headers={"Authorization": f"Bearer {TOKENS['DRIFTLINE_ADMIN_TOKEN']}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            ids[name] = r.json()["request_id"]
        # both replicas log into the one PostgreSQL store
        from sqlalchemy import select

        from driftline.store import open_store
        from driftline.store.tables import Prediction

        store = open_store(pg_url, migrate=False)
        try:
            deadline = time.monotonic() + 60
            while True:
                with store.sessions() as session:
                    stored = set(session.scalars(select(Prediction.request_id)))
                if set(ids.values()) <= stored:
                    break
                assert time.monotonic() < deadline, (ids, stored)
                time.sleep(0.3)
        finally:
            store.dispose()
        # exactly the leader runs the scheduler; the replica does not
        assert "leads the scheduler" in urls["scheduler"][2].read_text()
        assert "leads the scheduler" not in urls["api-1"][2].read_text()
    assert ROOT.is_dir()


def test_the_stop_grace_period_covers_the_graceful_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compose sends SIGTERM, then SIGKILL after stop_grace_period: in between, uvicorn
    finishes in-flight requests and the writer drains its queue (both timeouts from the code)."""
    import inspect

    from driftline.store import StoreWriter

    needed = uvicorn_graceful_seconds(tmp_path, monkeypatch) + (
        inspect.signature(StoreWriter.stop).parameters["timeout"].default
    )
    for name in ("api-1", "api-2", "scheduler"):
        grace = compose()["services"][name]["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) >= needed, name
