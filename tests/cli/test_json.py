"""`--json` on every command that prints a table (issue 14, point 5d): stdout carries the JSON
alone (progress goes to stderr), with the data the table shows, checked here against what the
store and the registry hold."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from driftline.anomaly.dataset import KIND_COLUMN
from driftline.cli import app
from driftline.config import Settings
from driftline.data import generate_loans
from driftline.loop.controller import read_rollout
from driftline.models.bundle import MODEL_FILE
from driftline.registry import Registry
from driftline.store import open_store, queries

runner = CliRunner()

#: Every command that prints a Rich table (grep `Table(` in src/driftline/cli and the helpers
#: they call: anomaly/compare.py's comparison table, the demo's live view and timeline).
TABLE_COMMANDS = [
    ("demo",),
    ("train",),
    ("check",),
    ("retrain",),
    ("alerts",),
    ("audit",),
    ("loadtest",),
    ("models", "list"),
    ("models", "history"),
    ("rollout", "status"),
    ("rollout", "start"),
    ("rollout", "abort"),
    ("rollout", "step"),
    ("anomaly", "generate-dataset"),
    ("anomaly", "compare"),
    ("anomaly", "train"),
    ("anomaly", "import-prometheus"),
    ("db", "dead-letters"),
]


def test_every_table_command_takes_json() -> None:
    root: Any = typer.main.get_command(app)
    missing = []
    for path in TABLE_COMMANDS:
        command = root
        for name in path:
            command = command.commands[name]
        if not any("--json" in param.opts for param in command.params):
            missing.append(" ".join(path))
    assert missing == []


def run_json(settings: Settings, *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, ["--home", str(settings.home), *args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)  # nothing but the JSON on stdout


def test_train_models_audit_and_rollout_as_json(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    generate_loans(1_200, seed=1).to_csv(data, index=False)
    first = run_json(settings, "train", str(data), "-t", "default", "-m", "logreg")
    second = run_json(settings, "train", str(data), "-t", "default", "-m", "rf", "--seed", "1")
    store = open_store(settings.database_url)
    try:
        registry = Registry.from_settings(settings, store)
        versions = {v.version: v for v in registry.versions()}
        assert (first["version"], first["aliases"], first["champion"]) == (1, ["champion"], 1)
        assert (second["version"], second["aliases"], second["champion"]) == (2, [], 1)
        for out in (first, second):
            metrics = out["metrics"]
            info = versions[out["version"]]
            assert metrics["accuracy"] == pytest.approx(info.metrics["accuracy"])
            assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"]
            assert [row["class"] for row in metrics["per_class"]] == metrics["classes"]
            assert out["kind"] == info.kind

        listed = run_json(settings, "models", "list")
        assert [v["version"] for v in listed] == [2, 1]
        for v in listed:
            info = versions[v["version"]]
            assert v["aliases"] == list(info.aliases) and v["kind"] == info.kind
            assert v["created"] == pytest.approx(info.created)
            assert v["accuracy"] == pytest.approx(info.metrics["accuracy"])
            assert v["f1_macro"] == pytest.approx(info.metrics["f1_macro"])

        runner.invoke(app, ["--home", str(settings.home), "models", "promote", "2"])
        history = run_json(settings, "models", "history")
        moves = registry.history(limit=50)
        assert [(h["alias"], h["from_version"], h["to_version"], h["reason"]) for h in history] == [
            (m.alias, m.from_version, m.to_version, m.reason) for m in moves
        ]
        assert history[0]["to_version"] == 2 and history[0]["reason"] == "manual promotion"

        assert run_json(settings, "rollout", "status") is None
        started = run_json(settings, "rollout", "start", "1")
        assert (started["challenger"], started["champion"], started["stage"]) == (1, 2, "shadow")
        assert started == read_rollout(store, settings.model_name)
        stepped = run_json(settings, "rollout", "step")
        assert stepped["rollout"] == read_rollout(store, settings.model_name)
        assert stepped["verdict"]["action"] and stepped["verdict"]["reasons"]
        aborted = run_json(settings, "rollout", "abort", "--reason", "json test")
        assert aborted == read_rollout(store, settings.model_name)
        assert aborted["stage"] != "shadow"
        assert run_json(settings, "rollout", "status") == aborted

        events = run_json(settings, "audit")
        with store.sessions() as session:
            rows = queries.list_audit(session=session, kinds=None, since=0.0, limit=100)
        assert [(e["kind"], e["message"], e["model_version"]) for e in events] == [
            (r.kind, r.message, r.model_version) for r in rows
        ]
        assert any(e["message"] == "json test" or "json test" in json.dumps(e) for e in events)

        # Nothing triggered: the JSON says why, and the exit code says "not triggered".
        outcome = run_json(settings, "retrain", "--if-triggered", code=5)
        assert outcome["trigger"]["retrain"] is False and outcome["trigger"]["reasons"]
        assert outcome["gate"] is None and outcome["challenger_version"] is None
    finally:
        store.dispose()


def test_alerts_as_json(settings: Settings) -> None:
    settings.ensure_home()
    store = open_store(settings.database_url)
    now = time.time()
    try:
        with store.sessions.begin() as session:
            for i, (name, severity) in enumerate(
                [("FeatureDrift", "critical"), ("HighLatencyP99", "warning")]
            ):
                queries.open_alert(
                    session=session,
                    fingerprint=f"fp{i}",
                    name=name,
                    severity=severity,
                    labels={"feature": "income"} if i == 0 else {},
                    summary=f"{name} summary",
                    description="",
                    value=0.5,
                    starts_at=now - 100 + i,
                )
            queries.resolve_alert(session=session, fingerprint="fp1", ends_at=now)
        with store.sessions() as session:
            rows = queries.list_alerts(session=session, limit=50)
    finally:
        store.dispose()
    alerts = run_json(settings, "alerts")
    assert [(a["name"], a["status"], a["severity"], a["labels"]) for a in alerts] == [
        (r.name, r.status, r.severity, r.labels) for r in rows
    ]
    assert [a["status"] for a in alerts] == ["resolved", "firing"]
    assert alerts[0]["ends_at"] == pytest.approx(now) and alerts[1]["ends_at"] is None
    firing = run_json(settings, "alerts", "--status", "firing")
    assert [a["name"] for a in firing] == ["FeatureDrift"]


def test_anomaly_commands_as_json(settings: Settings, tmp_path: Path) -> None:
    metrics = tmp_path / "host.csv"
    generated = run_json(
        settings, "anomaly", "generate-dataset", "-o", str(metrics), "--rows", "2000"
    )
    frame = pd.read_csv(metrics)
    assert generated["rows"] == len(frame) == 2_000
    assert generated["kinds"] == {
        str(k): int(n) for k, n in frame[KIND_COLUMN].value_counts().items()
    }
    compared = run_json(settings, "anomaly", "compare", str(metrics), "--kind", "iforest")
    assert [row["kind"] for row in compared] == ["iforest"]
    assert 0 <= compared[0]["precision"] <= 1 and compared[0]["n_holdout"] > 0
    trained = run_json(
        settings, "anomaly", "train", str(metrics), "-o", str(tmp_path / "b"), "--no-register"
    )
    assert trained["labeled"] is True and trained["version"] is None
    assert trained["kind"] == "iforest" and 0 <= trained["metrics"]["f1"] <= 1
    assert (tmp_path / "b" / MODEL_FILE).exists()


def test_demo_as_json(settings: Settings) -> None:
    """The live view goes to stderr; stdout is the run's totals and timeline."""
    from tests.support.servers import free_port

    args = ["demo", "--duration", "4", "--rate", "40", "--model", "logreg", "--label-delay"]
    out = run_json(settings, *args, "0.5", "--no-drift", "--no-loop", "--port", str(free_port()))
    assert out["answered"] >= 50 and out["errors"] == 0 and out["labels_sent"] == out["answered"]
    assert out["model_versions"] == [1] and 0.5 < out["accuracy"] <= 1
    assert out["p50_ms"] <= out["p95_ms"] <= out["p99_ms"]
    assert out["drift_started_s"] is None and isinstance(out["timeline"], list)
