"""`driftline db upgrade` and `driftline db current`, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from driftline.cli import app
from driftline.store import create_store_engine, current_revision, head_revision

runner = CliRunner()


def test_upgrade_migrates_an_empty_store_once_and_current_reports_it(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", db_url)
    home = ["--home", str(tmp_path / "home")]
    behind = runner.invoke(app, [*home, "db", "current"])
    assert behind.exit_code == 2, behind.output
    assert "(empty)" in behind.output

    first = runner.invoke(app, [*home, "db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"to {head_revision()}" in first.output
    engine = create_store_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert {"predictions", "labels"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()

    again = runner.invoke(app, [*home, "db", "upgrade"])
    assert again.exit_code == 0 and "already at revision" in again.output
    current = runner.invoke(app, [*home, "db", "current"])
    assert current.exit_code == 0 and head_revision() in current.output
