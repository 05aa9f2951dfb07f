"""The README keeps its promises: the two copy-paste lines, a row per setting, and a row per
metric."""

from __future__ import annotations

import re
from pathlib import Path

from driftline.config import Settings
from driftline.service.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DEMO_LINE = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/driftline demo"
TEST_LINE = (
    "python3 -m venv .venv && .venv/bin/pip install 'torch==2.13.0' && "
    ".venv/bin/pip install -e '.[dev]' && .venv/bin/pytest"
)


def _readme_test_line() -> str:
    """The one command in the README's block after "run the whole test suite"."""
    section = README.split("run the whole test suite", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_readme_has_the_two_lines_and_ci_runs_the_test_line() -> None:
    """CI runs what a user runs: `.ci/run`'s only pytest command is the README's test line,
    character for character (torch included, so no test is skipped for a user alone)."""
    assert DEMO_LINE in README and _readme_test_line() == TEST_LINE
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if "pytest" in line and not line.lstrip().startswith("#")]
    assert commands == [TEST_LINE]


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [
        f"DRIFTLINE_{name.upper()}"
        for name in Settings.model_fields
        if f"DRIFTLINE_{name.upper()}" not in README
    ]
    assert missing == []


def test_every_metric_is_in_the_metrics_table() -> None:
    # What Prometheus exposes: a counter family ``x`` is the series ``x_total``.
    exported = [
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in ServiceMetrics().registry.collect()
    ]
    assert len(exported) > 40  # the registry really was read
    table = README.split("\n### Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`(driftline_\w+)`", row.split("|")[1])
    }
    assert [name for name in exported if name not in documented] == []
