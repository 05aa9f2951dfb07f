"""The API as a Ray Serve deployment: N replicas of the same app, optionally autoscaled.

Each replica is what a ``driftline serve --workers N`` worker process is: it gets the
``DRIFTLINE_*`` settings of the command as its environment and builds the app with
:func:`driftline.service.app.create_app_from_env` (logging and tracing configured, then
``create_app``). Ray Serve runs the app's lifespan in every replica, so each one starts its own
:class:`driftline.service.runtime.ServingRuntime` -- store writer, window recorder, alias poll
(hot reload and canary routing), scheduler lease -- against the *shared* store and registry
named by the settings. With several replicas those must be shared services (PostgreSQL, an
MLflow server, or on one machine a shared ``DRIFTLINE_HOME``), exactly as for ``--workers``.

What a replica's end means for acknowledged predictions:

* a **graceful** stop (scale-down, redeploy, ``serve.delete``/``serve.shutdown``, ``Ctrl-C`` on
  ``driftline serve --engine ray``) runs the lifespan shutdown within
  ``graceful_shutdown_timeout_s``: the writer drains its queue into the store (or the spill
  file), so every acknowledged prediction is stored;
* a **kill** (the replica process dies, ``ray.kill``) loses what that replica had acknowledged
  but not yet written -- at most its last ``DRIFTLINE_FLUSH_INTERVAL_SECONDS`` of records, as a
  killed worker process does; everything older is in the store. Serve starts a replacement.

Metrics: each replica keeps its own Prometheus registry (``/metrics`` answers from whichever
replica Serve routes to); Ray Serve's own request metrics cover the deployment as a whole.

Example
-------
>>> options = RayServeOptions(replicas=2)
>>> options.deployment_options()["num_replicas"]
2
>>> RayServeOptions(min_replicas=1, max_replicas=4).deployment_options()["autoscaling_config"]
{'min_replicas': 1, 'max_replicas': 4, 'target_ongoing_requests': 8.0}
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import warnings
from typing import Any

from driftline.config import Settings
from driftline.errors import ConfigurationError
from driftline.on_ray.local import ensure_ray

__all__ = [
    "APP_NAME",
    "DEPLOYMENT_NAME",
    "RayServeOptions",
    "build_application",
    "run",
    "serve_api",
]

#: Names of the Serve application and deployment.
APP_NAME = "driftline"
DEPLOYMENT_NAME = "driftline-api"


@dataclasses.dataclass(frozen=True)
class RayServeOptions:
    """How many replicas, and when to add or remove them.

    Parameters
    ----------
    replicas
        Fixed number of replicas (ignored when ``max_replicas`` is set).
    min_replicas, max_replicas
        Autoscaling bounds: with ``max_replicas`` set, Serve scales between them on the
        number of ongoing requests per replica.
    target_ongoing_requests
        Autoscaling target of ongoing requests per replica.
    max_ongoing_requests
        Requests one replica handles at once before Serve queues them.
    num_cpus
        CPUs reserved per replica.
    graceful_shutdown_timeout_s
        Time a stopping replica gets to drain (the writer's flush of its queue).
    """

    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float = 8.0
    max_ongoing_requests: int = 64
    num_cpus: float = 1.0
    graceful_shutdown_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigurationError(f"replicas must be >= 1, got {self.replicas}")
        low = 1 if self.min_replicas is None else self.min_replicas
        if self.max_replicas is not None and not 0 <= low <= self.max_replicas:
            raise ConfigurationError(
                f"need 0 <= min_replicas <= max_replicas, got {low} and {self.max_replicas}"
            )
        if self.min_replicas is not None and self.max_replicas is None:
            raise ConfigurationError("min_replicas needs max_replicas (autoscaling bounds)")
        if self.target_ongoing_requests <= 0:
            raise ConfigurationError(
                f"target_ongoing_requests must be > 0, got {self.target_ongoing_requests}"
            )
        if self.max_ongoing_requests < 1:
            raise ConfigurationError(
                f"max_ongoing_requests must be >= 1, got {self.max_ongoing_requests}"
            )
        if self.num_cpus < 0:
            raise ConfigurationError(f"num_cpus must be >= 0, got {self.num_cpus}")

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of ``serve.deployment``."""
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "max_ongoing_requests": self.max_ongoing_requests,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "ray_actor_options": {"num_cpus": self.num_cpus},
        }
        if self.max_replicas is not None:
            options["autoscaling_config"] = {
                "min_replicas": 1 if self.min_replicas is None else self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def serve_api() -> Any:
    """The ``ray.serve`` module (imported once; its import-time deprecation warnings about its
    own pydantic fields are not the caller's to fix, so they are silenced here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from ray import serve  # noqa: PLC0415 — the ray extra
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ConfigurationError(
            "engine 'ray' needs Ray Serve: pip install 'driftline[ray]'"
        ) from exc
    return serve


def _api_class() -> type:
    """The deployment class: a late-bound ingress that builds the app in the replica."""
    serve = serve_api()

    class DriftlineAPI:
        """One replica: the worker-process environment, then the app from it."""

        def __init__(self, env: dict[str, str]) -> None:
            self._env = env

        def __serve_build_asgi_app__(self) -> Any:
            # A replica is a dedicated process: its environment is the worker's.
            os.environ.update(self._env)
            from driftline.service.app import create_app_from_env  # noqa: PLC0415 — in the replica, once its environment is set

            return create_app_from_env()

    return serve.ingress()(DriftlineAPI)  # type: ignore[no-any-return]


def build_application(settings: Settings, options: RayServeOptions | None = None) -> Any:
    """The Serve application (``serve.run`` it, or use it in a Serve config file)."""
    from driftline.cli.serve import settings_to_env  # noqa: PLC0415 — keeps the CLI (Typer) out of a replica

    serve = serve_api()
    chosen = options or RayServeOptions()
    env = settings_to_env(settings.model_copy(update={"workers": 1}))
    deployment = serve.deployment(_api_class(), **chosen.deployment_options())
    return deployment.bind(env)


def run(
    settings: Settings, options: RayServeOptions | None = None, *, blocking: bool = True
) -> None:
    """Serve on Ray: join the cluster named by ``RAY_ADDRESS`` (else start a local Ray), start
    Serve's HTTP proxy on ``settings.host:settings.port`` and deploy the app at ``/``.

    With ``blocking`` it returns on ``Ctrl-C``/``SIGTERM`` after a graceful shutdown of the
    application (every replica drains its writer).
    """
    serve = serve_api()
    ensure_ray()
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, options), name=APP_NAME, route_prefix="/")
    if not blocking:
        return
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        serve.delete(APP_NAME)
        serve.shutdown()
