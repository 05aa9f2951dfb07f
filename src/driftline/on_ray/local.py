"""Joining a Ray cluster, or starting a local one, for the Ray engines.

``ray.init()`` joins the cluster at ``RAY_ADDRESS`` (or one already running on this machine),
whose workers run as that cluster was configured; otherwise it starts a local Ray. For a
local Ray driftline changes one of Ray's defaults: Ray starts every worker process (Serve's
replicas, controller and proxy; Ray Data's tasks) 15 nice levels below the process that
started Ray. On a laptop or a small VM shared with other work that starves the API replicas
of ``driftline serve --engine ray``: beside two busy processes each replica got ~3 % of a
core, and replicas took 72-86 s to start instead of 12-29 s (measured with the test suite
beside ``stress-ng --cpu 2``). driftline's own ``--workers`` run at the command's priority, so
its Ray workers do too: ``RAY_worker_niceness=0`` in this process's environment, which the
processes of a local Ray inherit when it starts (a cluster being joined ignores it). A
``RAY_worker_niceness`` already in the environment wins.
"""

from __future__ import annotations

import os
from typing import Any

from driftline.errors import ConfigurationError

__all__ = ["WORKER_NICENESS", "ensure_ray"]

#: Ray's setting and driftline's value for a local Ray (see the module doc).
WORKER_NICENESS = ("RAY_worker_niceness", "0")


def ensure_ray() -> Any:
    """The ``ray`` module, initialised (see the module doc)."""
    try:
        import ray  # noqa: PLC0415 — the ray extra
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ConfigurationError("the ray engine needs Ray: pip install 'driftline[ray]'") from exc
    if not ray.is_initialized():
        os.environ.setdefault(*WORKER_NICENESS)
        ray.init(include_dashboard=False, log_to_driver=False)
    return ray
