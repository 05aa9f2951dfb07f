"""`driftline serve` in a real subprocess on a free loopback port, for the tests that need a
real server (a browser, Prometheus): started, waited for, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.promtools import free_port
from tests.test_outage import _wait_ready


@contextmanager
def serve_subprocess(
    home: Path, *, env: dict[str, str] | None = None, timeout: float = 60
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
        _wait_ready(url, proc, timeout=timeout)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
