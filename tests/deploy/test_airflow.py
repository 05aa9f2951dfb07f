"""deploy/airflow/driftline_dags.py, the Airflow example.

Airflow itself is not installed for the tests: `pip install --dry-run apache-airflow` (3.3.2)
into driftline's environment would downgrade FastAPI (0.165 -> 0.136), and a separate Airflow
environment in CI would add some seventy packages for one parse. So the file is parsed with
`ast` (it must be valid Python for the Python versions driftline supports), its structure is
read from the syntax tree, and every command in it is parsed by driftline's own CLI and checked
to be the same as the Kubernetes CronJobs run."""

from __future__ import annotations

import ast
from typing import Any

import typer

from driftline.cli import app
from tests.deploy.deploytools import DEPLOY, cron_shell_commands, driftline_argv, parse_command

DAGS = DEPLOY / "airflow" / "driftline_dags.py"


def _calls(tree: ast.AST, name: str) -> list[dict[str, Any]]:
    """Keyword arguments (literals only) of every call to ``name``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
            kwargs = {}
            for kw in node.keywords:
                if kw.arg is None:
                    continue
                try:
                    kwargs[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    kwargs[kw.arg] = ast.unparse(kw.value)
            out.append(kwargs)
    return out


def test_the_dag_file_parses_and_defines_the_monitor_and_the_loop() -> None:
    tree = ast.parse(DAGS.read_text(), filename=str(DAGS), feature_version=(3, 11))
    dags = _calls(tree, "DAG")
    assert {d["dag_id"] for d in dags} == {"driftline_monitor", "driftline_loop"}
    for dag in dags:
        assert dag["catchup"] is False and dag["max_active_runs"] == 1
        assert len(dag["schedule"].split()) == 5  # a cron expression
    tasks = _calls(tree, "BashOperator")
    assert len({t["task_id"] for t in tasks}) == len(tasks) == 3
    assert all(t["env"] == "ENV" and t["append_env"] is True for t in tasks)
    # rollout step runs before retrain, as in the in-process loop
    assert any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.RShift) for n in ast.walk(tree))


def test_every_dag_command_parses_and_matches_the_cronjobs() -> None:
    tree = ast.parse(DAGS.read_text())
    commands = {t["bash_command"] for t in _calls(tree, "BashOperator")}
    group = typer.main.get_command(app)
    for command in commands:
        parse_command(group, driftline_argv(command), name="driftline")
    # the same commands, with the same exit-code mapping, as the Kubernetes CronJobs
    assert commands == set(cron_shell_commands().values())
