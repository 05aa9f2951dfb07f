"""Helpers of the deployment tests: parse a command line with the real CLI (Typer's or any
Click group) without running it, and Compose-style variable interpolation."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
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
