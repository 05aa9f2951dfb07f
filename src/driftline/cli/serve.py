"""`driftline serve`: the API (one or several worker processes)."""

from __future__ import annotations

import os
import shutil
from typing import Annotated

import typer
import uvicorn
from pydantic import SecretStr

from driftline.cli.common import console, handle_errors, state
from driftline.config import Settings
from driftline.logs import configure_logging
from driftline.service.app import create_app
from driftline.service.supervisor import run_workers
from driftline.store import open_store

__all__ = ["register_command", "settings_to_env"]


def settings_to_env(settings: Settings) -> dict[str, str]:
    """``DRIFTLINE_*`` variables that rebuild ``settings`` in a worker process."""
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
    ) -> None:
        """Serve the champion over HTTP. Docs at /docs, metrics at /metrics, events at /ws."""
        st = state(ctx)
        updates = {
            k: v
            for k, v in {"host": host, "port": port, "workers": workers}.items()
            if v is not None
        }
        settings = st.settings.model_copy(update=updates)
        settings.ensure_home()
        configure_logging(settings)
        # Migrate once here, so several workers never race on the schema.
        open_store(settings.database_url).dispose()
        console.print(
            f"driftline API on http://{settings.host}:{settings.port} "
            f"({settings.workers} worker{'s' if settings.workers > 1 else ''}); "
            f"docs at /docs, metrics at /metrics"
        )
        if settings.workers == 1:
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
        run_workers(settings)  # native threads per worker, start-up budget, lost workers logged
