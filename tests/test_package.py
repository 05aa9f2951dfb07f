"""The public surface and the layering rules of the package."""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import driftline

SRC = Path(driftline.__file__).parent
PACKAGES = sorted(
    {"driftline"}
    | {
        f"driftline.{m.name}"
        for m in pkgutil.walk_packages([str(SRC)])
        if m.ispkg and "migrations" not in m.name
    }
)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_declares_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if name.endswith(".routes"):
        return  # routers are mounted by the app, not imported by users
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    assert sorted(set(exported)) == sorted(exported), "duplicates in __all__"


PURE = [
    "drift",
    "profiles",
    "quality.py",
    "performance.py",
    "schema.py",
    "models/base.py",
    "comparison.py",
    "report.py",
    "params.py",
    "durations.py",
    "loop/gate.py",
    "loop/trigger.py",
]
FORBIDDEN = {"sqlalchemy", "fastapi", "starlette", "uvicorn", "alembic", "mlflow", "httpx"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_statistical_core_does_no_io() -> None:
    files: list[Path] = []
    for entry in PURE:
        path = SRC / entry
        assert path.exists(), f"{entry} is listed as pure but does not exist"
        if path.is_dir():
            files += sorted(path.rglob("*.py"))
        else:
            files.append(path)
    assert files
    offenders = {str(f.relative_to(SRC)): _imports(f) & FORBIDDEN for f in files}
    assert not {k: v for k, v in offenders.items() if v}


def test_settings_are_never_built_at_import() -> None:
    """Import every module with a broken environment: nothing may read it at import."""
    env = {**os.environ, "DRIFTLINE_PORT": "not-a-port", "DRIFTLINE_WORKERS": "0"}
    modules = [
        f"driftline.{m.name}"
        for m in pkgutil.walk_packages([str(SRC)])
        if "migrations" not in m.name and m.name != "__main__"
    ]
    code = "import importlib,sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *modules], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_one_version_and_package_data_that_exists() -> None:
    """The version lives in one place; every package-data pattern matches a file (no stale
    entries), and the license file pyproject names is there."""
    import importlib.metadata
    import tomllib
    from pathlib import Path

    import driftline

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "driftline.__version__"}
    assert importlib.metadata.version("driftline") == driftline.__version__
    package = root / "src" / "driftline"
    for pattern in project["tool"]["setuptools"]["package-data"]["driftline"]:
        assert list(package.glob(pattern)), f"package-data pattern {pattern!r} matches nothing"
    assert "Apache License" in (root / "LICENSE").read_text()
    assert project["project"]["license"] == {"text": "Apache-2.0"}
