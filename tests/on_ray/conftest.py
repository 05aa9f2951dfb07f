"""One local Ray instance for every Ray test of the session: 2 CPUs, no dashboard."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """Ray started on this machine for the session (shut down at its end).

    Ray is in the ``dev`` extra: without it these tests skip locally and fail under ``CI``.
    """
    try:
        import ray
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Ray is required in CI (the dev extra installs it): {exc}")
        pytest.skip(f"Ray not installed: {exc}")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    folder = tempfile.mkdtemp(prefix="dl-ray-")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",  # every Ray process on loopback
        # The machine is shared: a small object store, in a folder of this session's own (a
        # short path: Ray's Unix sockets live under it and their paths are limited to 107 bytes).
        object_store_memory=300 * 1024 * 1024,
        _temp_dir=folder,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
