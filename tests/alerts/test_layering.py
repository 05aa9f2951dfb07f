"""The rules, the rule engine and the manager are pure: only the notifiers, the config loader
and the runner do I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import driftline.alerts

SRC = Path(driftline.alerts.__file__).parent
IO = {"httpx", "smtplib", "socket", "ssl", "sqlalchemy", "fastapi", "yaml", "time", "os"}


@pytest.mark.parametrize("module", ["model.py", "rules.py", "engine.py", "manager.py"])
def test_pure_modules_import_no_io(module: str) -> None:
    tree = ast.parse((SRC / module).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    assert not found & IO
