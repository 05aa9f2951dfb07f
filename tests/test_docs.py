"""The README keeps its promises: the two copy-paste lines, and a row per setting."""

from __future__ import annotations

from pathlib import Path

from driftline.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DEMO_LINE = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/driftline demo"
TEST_LINE = "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/pytest"


def test_readme_has_the_two_lines_and_ci_runs_the_test_line() -> None:
    assert DEMO_LINE in README and TEST_LINE in README
    assert TEST_LINE in (ROOT / ".ci" / "run").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [
        f"DRIFTLINE_{name.upper()}"
        for name in Settings.model_fields
        if f"DRIFTLINE_{name.upper()}" not in README
    ]
    assert missing == []
