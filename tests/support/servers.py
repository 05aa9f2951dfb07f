"""`driftline serve` in a real subprocess on a free loopback port, for the tests that need a
real server (a browser, Prometheus, a store outage): started, waited for, stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

#: How long a test waits for a server to become ready. Start-up is mostly imports (scikit-learn,
#: MLflow, SQLAlchemy...): ~3 s on an idle machine, over a minute on 2 cores shared with other
#: work. This bounds a hang; it is not a speed requirement.
START_TIMEOUT = 240.0


@contextmanager
def serve_subprocess(
    home: Path, *, env: dict[str, str] | None = None, timeout: float = START_TIMEOUT
) -> Iterator[str]:
    """Yield the base URL of a ready server using ``home``; its log is ``home/serve.log``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {
        **os.environ,
        "DRIFTLINE_HOME": str(home),
        "DRIFTLINE_FLUSH_INTERVAL_SECONDS": "0.2",
        **(env or {}),
    }
    with open(home / "serve.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftline", "serve", "--port", str(port)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(url, proc, timeout=timeout)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    """Until ``url/ready`` answers 200; fails when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}; see serve-*.log")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server not ready in time")


def serve_process(
    home: Path, db_url: str, port: int, env_extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start `driftline serve` on ``port`` with the store at ``db_url`` (flush interval 0.5 s);
    its log is ``home/serve-<port>.log``."""
    env = {
        **os.environ,
        "DRIFTLINE_HOME": str(home),
        "DRIFTLINE_DATABASE_URL": db_url,
        "DRIFTLINE_FLUSH_INTERVAL_SECONDS": "0.5",
        **env_extra,
    }
    with open(home / f"serve-{port}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "driftline", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
