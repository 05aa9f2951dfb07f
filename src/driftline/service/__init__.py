"""The HTTP service: app factory, routes, runtime, metrics, live events."""

from __future__ import annotations

from driftline.service.app import create_app, create_app_from_env
from driftline.service.runtime import ServingRuntime

__all__ = ["ServingRuntime", "create_app", "create_app_from_env"]
