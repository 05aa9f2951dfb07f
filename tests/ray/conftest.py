"""One local Ray instance for every Ray test of the session: 2 CPUs, no dashboard."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
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
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",  # every Ray process on loopback
        # The machine is shared: a small object store, spilled under the test's own folder.
        object_store_memory=300 * 1024 * 1024,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    try:
        yield ray
    finally:
        ray.shutdown()
