"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.orm import Session

from driftline.errors import NotReadyError
from driftline.models.bundle import ModelBundle
from driftline.service.runtime import ServingRuntime

__all__ = ["AdminDep", "ChampionDep", "RuntimeDep", "SessionDep"]


def get_runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServingRuntime, Depends(get_runtime)]


def get_champion(runtime: RuntimeDep) -> ModelBundle:
    bundle = runtime.champion
    if bundle is None:
        raise NotReadyError("no champion model loaded yet; train one with `driftline train`")
    return bundle


ChampionDep = Annotated[ModelBundle, Depends(get_champion)]


def get_session(runtime: RuntimeDep):  # type: ignore[no-untyped-def]
    with runtime.store.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_admin(
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(description="Bearer <admin token>")] = None,
) -> None:
    token = runtime.settings.admin_token
    if token is None:
        raise HTTPException(
            status_code=403,
            detail="admin endpoints are disabled: set DRIFTLINE_ADMIN_TOKEN to enable them",
        )
    expected = f"Bearer {token.get_secret_value()}"
    if authorization is None or not secrets.compare_digest(authorization, expected):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong admin token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Annotated[None, Depends(require_admin)]
