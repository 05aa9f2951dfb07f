"""One local Ray instance for every Ray test of the session: 2 CPUs, no dashboard, its workers
at the tests' own CPU priority."""

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

    Two settings keep the tests passing beside other CPU work (``stress-ng --cpu 2``, other
    xdist workers), neither changes what the tests check:

    * ``worker_niceness=0``: Ray's raylet starts every worker process -- Serve's controller,
      proxy and replicas, Ray Data's tasks and actors -- 15 nice levels below the process that
      started Ray (``RAY_worker_niceness``, default 15). Beside two nice-0 ``stress-ng``
      processes a nice-15 process weighs 36 against 1024 in the kernel's scheduler: each replica
      got about 3 % of a core to import driftline, and the tests timed out. With 0 the workers
      compete at the priority of the test process, like every other server the suite starts.
    * one Parquet footer reader per read (``RAY_DATA_PARQUET_FOOTER_NUM_ACTORS``, default 32):
      Ray Data 2.60 lists a Parquet read by provisioning 32 ``FooterReader`` actors, one worker
      process each; for the handful of small files here one reads every footer, and the others
      are processes started (two at a time, each importing Ray and PyArrow) only to be killed
      when the listing ends -- about five per read, 15-20 s per read on busy cores.
    """
    try:
        import ray
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Ray is required in CI (the dev extra installs it): {exc}")
        pytest.skip(f"Ray not installed: {exc}")
    if ray.is_initialized():
        ray.shutdown()
    folder = tempfile.mkdtemp(prefix="dl-ray-")
    with pytest.MonkeyPatch.context() as env:
        for name, value in (
            ("RAY_USAGE_STATS_ENABLED", "0"),
            # Read by the driver (this process) when a read is planned: see the docstring.
            ("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1"),
        ):
            if name not in os.environ:  # a developer's own setting wins
                env.setenv(name, value)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",  # every Ray process on loopback
            # The machine is shared: a small object store, in a folder of this session's own (a
            # short path: Ray's Unix sockets live under it and their paths are limited to 107
            # bytes).
            object_store_memory=300 * 1024 * 1024,
            _temp_dir=folder,
            # Workers at this process's priority, not 15 nice levels below: see the docstring.
            _system_config={"worker_niceness": 0},
        )
        try:
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(folder, ignore_errors=True)
