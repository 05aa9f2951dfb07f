"""Helpers of the deployment tests: parse a command line with the real CLI (Typer's or any
Click group) without running it, Compose-style variable interpolation, and readers of the
Dockerfile, the Kubernetes manifests and the Grafana dashboard shared by several checks."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from typer.testing import CliRunner

from driftline.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def parse_command(group: Any, args: Sequence[str], *, name: str) -> dict[str, Any]:
    """Parse ``args`` with the Click/Typer ``group`` down to the leaf command, as the CLI would
    before running it; returns the leaf's parameters. A wrong option or value raises the CLI's
    own usage error."""
    ctx = group.make_context(name, list(args))
    command = group
    params: dict[str, Any] = {}
    while hasattr(command, "resolve_command"):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        assert rest, f"{name}: no subcommand in {list(args)}"
        sub_name, command, sub_args = command.resolve_command(ctx, rest)
        assert command is not None, f"{name}: unknown command {rest[0]!r}"
        ctx = command.make_context(sub_name, list(sub_args), parent=ctx)
        params = dict(ctx.params)
    return params


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` as Compose substitutes them."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg or ""
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VARIABLE.sub(one, value)


# The Dockerfile at the repository root.

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]

    def args(self) -> dict[str, str]:
        out = {}
        for value in self.values("ARG"):
            name, _, default = value.partition("=")
            out[name] = default.strip('"')
        return out


def stages() -> list[Stage]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    out: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            out.append(Stage(base=words[0], name=name))
        elif instruction != "COMMENT" and out:
            out[-1].instructions.append((instruction, value))
    return out


def final_env() -> dict[str, str]:
    envs: dict[str, str] = DockerfileParser(path=str(DOCKERFILE)).envs
    return envs


def exec_form(value: str) -> list[str]:
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), value
    return words


# deploy/kubernetes

KUBERNETES = DEPLOY / "kubernetes"


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return data


def manifests() -> list[dict[str, Any]]:
    docs = []
    for name in kustomization()["resources"]:
        docs.extend(d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d)
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = (d for d in manifests() if d["kind"] == kind and name in (None, d["metadata"]["name"]))
    return doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]
    return result


def uvicorn_graceful_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """What `driftline serve` passes uvicorn as its graceful-shutdown timeout."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: seen.update(kw))
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "serve", "--port", "0"])
    assert result.exit_code == 0, result.output
    return float(seen["timeout_graceful_shutdown"])


def cron_shell_commands() -> dict[str, str]:
    """The ``sh -c`` script of every CronJob, by name."""
    return {
        doc["metadata"]["name"]: pod_spec(doc)["containers"][0]["args"][0]
        for doc in manifests()
        if doc["kind"] == "CronJob"
    }


def driftline_argv(shell: str) -> list[str]:
    """The driftline command line at the start of a ``cmd || test`` shell snippet."""
    words = shlex.split(shell.split("||", maxsplit=1)[0])
    assert words[0] == "driftline", shell
    return words[1:]


# deploy/grafana

GRAFANA = DEPLOY / "grafana"


DASHBOARD = GRAFANA / "dashboards" / "driftline.json"


#: What Grafana substitutes before a query reaches Prometheus (values that keep it valid PromQL).
GRAFANA_VARIABLES = {
    "$__rate_interval": "30s",
    "$__interval": "30s",
    "$__range": "1h",
    "$job": ".+",
    "$feature": ".+",
}


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def panel_queries() -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` of every panel query."""
    return [
        (panel["title"], target["expr"])
        for panel in all_panels(load_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def substitute_variables(expr: str) -> str:
    """``expr`` with the Grafana variables replaced as Grafana would before querying."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr
