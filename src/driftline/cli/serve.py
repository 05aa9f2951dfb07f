"""`driftline serve`: the API (one or several worker processes, or Ray Serve replicas)."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Annotated

import typer

from driftline.cli.common import console, fail, handle_errors, state

if TYPE_CHECKING:
    from driftline.config import Settings

__all__ = ["register_command", "settings_to_env"]


def settings_to_env(settings: Settings) -> dict[str, str]:
    """``DRIFTLINE_*`` variables that rebuild ``settings`` in a worker process."""
    from pydantic import SecretStr  # noqa: PLC0415 — lazy: fast --help

    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        env[f"DRIFTLINE_{name.upper()}"] = text
    return env


def register_command(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def serve(
        ctx: typer.Context,
        host: Annotated[
            str | None, typer.Option(help="Interface (default DRIFTLINE_HOST).")
        ] = None,
        port: Annotated[int | None, typer.Option(help="Port (default DRIFTLINE_PORT).")] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, max=64, help="Worker processes.")
        ] = None,
        allow_unauthenticated: Annotated[
            bool,
            typer.Option(
                "--allow-unauthenticated",
                help="Serve on a non-loopback address although labels or reads are open "
                "(no DRIFTLINE_LABELS_TOKEN / DRIFTLINE_READ_TOKEN); see README Access control.",
            ),
        ] = False,
        engine: Annotated[
            str,
            typer.Option(
                help="'uvicorn' (worker processes) or 'ray' (replicas of a Ray Serve "
                "deployment on RAY_ADDRESS or a local Ray; the ray extra)."
            ),
        ] = "uvicorn",
        replicas: Annotated[
            int, typer.Option(min=1, max=256, help="With --engine ray: fixed replica count.")
        ] = 1,
        min_replicas: Annotated[
            int | None,
            typer.Option(min=0, help="With --engine ray and --max-replicas: autoscaling floor."),
        ] = None,
        max_replicas: Annotated[
            int | None,
            typer.Option(min=1, help="With --engine ray: autoscale up to this many replicas."),
        ] = None,
        target_ongoing_requests: Annotated[
            float,
            typer.Option(min=0.1, help="With --engine ray: autoscaling target per replica."),
        ] = 8.0,
    ) -> None:
        """Serve the champion over HTTP. Docs at /docs, metrics at /metrics, events at /ws."""
        from driftline.config import check_access  # noqa: PLC0415 — lazy: fast --help
        from driftline.logs import configure_logging  # noqa: PLC0415 — lazy: fast --help
        from driftline.store import open_store  # noqa: PLC0415 — lazy: fast --help

        if engine not in ("uvicorn", "ray"):
            raise fail(f"--engine must be 'uvicorn' or 'ray', got {engine!r}")
        st = state(ctx)
        updates = {
            k: v
            for k, v in {"host": host, "port": port, "workers": workers}.items()
            if v is not None
        }
        if allow_unauthenticated:
            updates["allow_unauthenticated"] = True
        settings = st.settings.model_copy(update=updates)
        check_access(settings)  # before anything is bound or written
        settings.ensure_home()
        configure_logging(settings)
        # Migrate once here, so several workers never race on the schema.
        open_store(settings.database_url).dispose()
        if engine == "ray":
            from driftline.on_ray.serve import RayServeOptions, run  # noqa: PLC0415 — the ray extra

            options = RayServeOptions(
                replicas=replicas,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                target_ongoing_requests=target_ongoing_requests,
            )
            scale = (
                f"{options.min_replicas or 1}-{max_replicas} replicas (autoscaling)"
                if max_replicas
                else f"{replicas} replica{'s' if replicas > 1 else ''}"
            )
            console.print(
                f"driftline API on Ray Serve at http://{settings.host}:{settings.port} "
                f"({scale}); docs at /docs"
            )
            run(settings, options)
            return
        console.print(
            f"driftline API on http://{settings.host}:{settings.port} "
            f"({settings.workers} worker{'s' if settings.workers > 1 else ''}); "
            f"docs at /docs, metrics at /metrics"
        )
        if settings.workers == 1:
            import uvicorn  # noqa: PLC0415 — lazy: fast --help

            from driftline.service.app import create_app  # noqa: PLC0415 — lazy: fast --help

            uvicorn.run(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_level="warning",
                log_config=None,  # uvicorn's lines go through driftline's handler (text, JSON)
                timeout_graceful_shutdown=30,
            )
            return
        metrics_dir = settings.home / "prometheus-multiproc"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        os.environ.update(settings_to_env(settings))
        from driftline.service.supervisor import run_workers  # noqa: PLC0415 — lazy: fast --help

        run_workers(settings)  # native threads per worker, start-up budget, lost workers logged
