"""The loop from the outside: `driftline retrain`, `driftline rollout ...`, GET /rollout and
the admin endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from driftline.cli import app as cli
from driftline.config import Settings
from driftline.data import generate_loans
from driftline.registry import CHALLENGER, Registry
from driftline.service import create_app
from driftline.store import open_store
from tests.conftest import LATENCY_NEVER_DECIDES
from tests.loop.traffic import bad_model, segment_drift, send, settle

#: Wide output, and (the CLI reads its settings from the environment) latency bounds no busy
#: machine reaches: the gate is judged on accuracy here.
WIDE = {
    "COLUMNS": "200",
    **{f"DRIFTLINE_{name.upper()}": str(value) for name, value in LATENCY_NEVER_DECIDES.items()},
}


@pytest.fixture
def served(settings: Settings, champion_bundle: Any) -> Iterator[TestClient]:
    s = settings.model_copy(
        update={
            "scheduler": False,
            "retrain_min_labels": 500,
            "admin_token": SecretStr("s3cret-token-0001"),
            **LATENCY_NEVER_DECIDES,
        }
    )
    store = open_store(s.database_url)
    Registry.from_settings(s, store).register(champion_bundle, actor="test")
    store.dispose()
    with TestClient(create_app(s)) as client:
        yield client


@pytest.fixture(scope="module")
def champion_bundle() -> Any:
    from driftline.data import TARGET
    from driftline.training import train_model

    return train_model(generate_loans(8_000, seed=1), TARGET, kind="hgb", seed=0).bundle


def test_retrain_cli_gates_and_starts_a_rollout_the_api_shows(
    served: TestClient, settings: Settings
) -> None:
    rt = served.app.state.runtime  # type: ignore[attr-defined]
    assert served.get("/rollout").status_code == 404
    send(served, segment_drift(2_000, seed=11), "drift")
    settle(rt)
    home = ["--home", str(settings.home)]
    result = CliRunner(env=WIDE).invoke(cli, [*home, "retrain"])
    assert result.exit_code == 0, result.output
    assert "gate" in result.output and "passed" in result.output
    assert "f1_macro" in result.output and "snapshot" in result.output
    body = served.get("/rollout").json()
    assert body["stage"] == "shadow" and body["challenger"] == 2 and body["champion"] == 1
    result = CliRunner(env=WIDE).invoke(cli, [*home, "rollout", "status"])
    assert result.exit_code == 0 and "stage shadow" in result.output

    # The admin endpoints need the token; abort withdraws the challenger.
    assert served.post("/rollout/abort", json={}).status_code in (401, 403)
    auth = {"Authorization": "Bearer s3cret-token-0001"}
    r = served.post("/rollout/abort", json={"reason": "test"}, headers=auth)
    assert r.status_code == 200 and r.json()["stage"] == "aborted"
    assert rt.registry.alias(CHALLENGER) is None
    r = served.post("/rollout/abort", json={}, headers=auth)
    assert r.status_code == 409 and "no rollout" in r.json()["detail"]
    r = served.post("/rollout/start", json={"version": 2, "stage": "canary"}, headers=auth)
    assert r.status_code == 200 and r.json()["stage"] == "canary"
    r = served.post("/rollout/start", json={"version": 2}, headers=auth)
    assert r.status_code == 409 and "abort it first" in r.json()["detail"]
    r = served.post("/rollout/start", json={"version": "two"}, headers=auth)
    assert r.status_code == 422 and "version" in r.text


def test_retrain_cli_reports_a_rejected_challenger(
    served: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A challenger worse than the champion is rejected by the gate: exit code 3, audited."""
    rt = served.app.state.runtime  # type: ignore[attr-defined]
    send(served, generate_loans(1_500, seed=12), "calm")
    settle(rt)
    import driftline.loop.retrain as retrain_module

    monkeypatch.setattr(
        retrain_module, "train_challenger", lambda champion, data, seed: bad_model(seed + 1)
    )
    result = CliRunner(env=WIDE).invoke(cli, ["--home", str(settings.home), "retrain"])
    assert result.exit_code == 3, result.output
    assert "rejected" in result.output and "does not beat champion" in result.output
    assert served.get("/rollout").status_code == 404
    audit = served.get("/audit", params={"kind": "gate"}).json()["items"]
    assert audit and audit[0]["success"] is False


def test_retrain_with_smote_on_served_traffic(served: TestClient, settings: Settings) -> None:
    """DRIFTLINE_RETRAIN_SMOTE=true on the loan data: booleans stay booleans (they used to
    become the strings "True"/"False", which the schema refused)."""
    rt = served.app.state.runtime  # type: ignore[attr-defined]
    send(served, segment_drift(2_000, seed=12), "drift")
    settle(rt)
    env = {**WIDE, "DRIFTLINE_RETRAIN_SMOTE": "true"}
    result = CliRunner(env=env).invoke(
        cli, ["--home", str(settings.home), "retrain", "--force", "--no-rollout"]
    )
    assert result.exit_code in (0, 3), result.output  # gate passed or rejected: it trained
    assert "must be numeric" not in result.output
    assert "smote" in result.output.lower()
