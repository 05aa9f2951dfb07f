"""Helpers for the tests that use Prometheus's own tools: finding ``prometheus`` and
``promtool`` (skip on a laptop without them, fail under CI), a throwaway Prometheus server on a
free loopback port, and the series names a PromQL expression reads."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from driftline.service.metrics import ServiceMetrics
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
INSTALL_HINT = "install the Debian package prometheus (.ci/install-debian-packages)"


def in_ci() -> bool:
    """True when the CI variable is set to anything but an empty or false-like value."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def require_binary(name: str) -> str:
    """Absolute path of ``name``; skips the test when it is missing, unless CI is set: then a
    missing binary is a broken CI machine and the test fails."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} not found on PATH; {INSTALL_HINT}"
    if in_ci():
        pytest.fail(f"{reason} (required because CI is set)")
    pytest.skip(reason)


def run_promtool(promtool: str, *args: str, stdin: bytes | None = None) -> str:
    """Run promtool; fail the test with its full output unless it exits 0."""
    done = subprocess.run(
        [promtool, *args], input=stdin, capture_output=True, timeout=60, check=False
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        pytest.fail(f"promtool {' '.join(args)} exited {done.returncode}:\n{output}")
    return output


class PrometheusServer:
    """A Prometheus of our own: loopback port, storage in ``folder``, a generated config that
    scrapes ``targets`` every ``interval`` (job ``driftline``; no targets, no scraping),
    optional rule files."""

    def __init__(
        self,
        binary: str,
        folder: Path,
        targets: Iterable[str],
        *,
        rule_files: Iterable[Path] = (),
        interval: str = "1s",
    ) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "prometheus.yml"
        rules = "".join(f"  - {Path(p).resolve()}\n" for p in rule_files)
        target_list = ", ".join(f"'{t}'" for t in targets)
        self.config.write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  evaluation_interval: {interval}\n"
            + (f"rule_files:\n{rules}" if rules else "")
            + (
                "scrape_configs:\n"
                "  - job_name: driftline\n"
                f"    scrape_interval: {interval}\n"
                f"    scrape_timeout: {interval}\n"
                f"    static_configs:\n      - targets: [{target_list}]\n"
                if target_list
                else ""
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        log = open(self.folder / "prometheus.log", "ab")  # noqa: SIM115 - the child keeps it
        with log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready in {timeout} s:\n{self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def log(self) -> str:
        path = self.folder / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def api(self, path: str, **params: str) -> Any:
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        body = r.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant-query result as a list of ``{"metric": {...}, "value": [t, "v"]}``."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self,
        promql: str,
        accept: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15,
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until ``accept(result)``; fail with the last result otherwise."""
        deadline = time.monotonic() + timeout
        result = self.query(promql)
        while not accept(result):
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql!r} never satisfied the test; last: {result}")
            time.sleep(0.25)
            result = self.query(promql)
        return result


# --- PromQL: which series does an expression read? ---------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
    "group_right", "inf", "nan", "start", "end",
}  # fmt: skip
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def series_names(expr: str) -> set[str]:
    """The metric (series) names an expression selects, without functions, keywords, label
    names, strings, durations or Grafana variables.

    >>> sorted(series_names(
    ...     'histogram_quantile(0.99, sum by (le, job) (rate(x_bucket{a="b"}[$__rate_interval])))'
    ...     ' / on (job) group_left y_total offset 5m > bool 2 or vector(0)'
    ... ))
    ['x_bucket', 'y_total']
    >>> sorted(series_names('{__name__="driftline_predictions_total", variant="champion"}'))
    ['driftline_predictions_total']
    """
    names = set(re.findall(r"""__name__\s*=\s*["']([\w:]+)["']""", expr))
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "1m", expr)  # Grafana variables
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', text)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)  # label lists of by/without/on/ignoring/group_*
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def family_name(series: str) -> str:
    """``driftline_x_seconds_bucket`` → ``driftline_x_seconds``, ``…_total`` → ``…``."""
    for suffix in ("_total", "_bucket", "_sum", "_count", "_created"):
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def exported_series() -> dict[str, str]:
    """Every series name the service can export, mapped to its family name."""
    metrics = ServiceMetrics()
    families = metrics.describe()
    out: dict[str, str] = {}
    for family in metrics.registry.collect():
        assert family.name in families
        for suffix in _SUFFIXES[family.type]:
            out[family.name + suffix] = family.name
    return out


def unknown_series(names: Iterable[str], allowed: Iterable[str] = ()) -> dict[str, str]:
    """Names (with why) that ServiceMetrics does not export; ``allowed`` are exceptions such
    as Prometheus's own ``up``."""
    exported = exported_series()
    families = set(exported.values())
    problems: dict[str, str] = {}
    for name in names:
        if name in allowed or name in exported:
            continue
        family = family_name(name)
        if family in families:
            problems[name] = f"family {family} is exported, but not a series named {name}"
        else:
            problems[name] = f"no family {family} in ServiceMetrics"
    return problems
