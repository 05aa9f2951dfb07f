"""Dependencies of the routes, as ``Annotated`` aliases.

Access control lives here (README "Access control"): three permissions, each with its own
bearer token in :class:`~driftline.config.Settings` (admin, labels, read). The admin token
grants all three; a labels or read permission whose token is unset is open to anyone; the
admin endpoints are disabled without the admin token. Tokens are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from sqlalchemy.orm import Session

from driftline.config import Settings
from driftline.errors import NotReadyError
from driftline.models.bundle import ModelBundle
from driftline.service.runtime import ServingRuntime

__all__ = [
    "WS_SUBPROTOCOL",
    "WS_TOKEN_PREFIX",
    "AdminDep",
    "ChampionDep",
    "LabelsDep",
    "Permission",
    "ReadDep",
    "RuntimeDep",
    "SessionDep",
    "WsReadDep",
    "authorize",
    "champion_of",
    "granted",
    "require_admin",
    "require_labels",
    "require_read",
    "require_read_ws",
    "subprotocol_token",
]


# ``async def``: a plain ``def`` dependency runs in the thread pool, one hop per request per
# dependency (FastAPI does not know it never blocks). These two only read attributes.
async def get_runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServingRuntime, Depends(get_runtime)]


async def get_champion(runtime: RuntimeDep) -> ModelBundle:
    return champion_of(runtime)


def champion_of(runtime: ServingRuntime) -> ModelBundle:
    """The champion bundle; :class:`NotReadyError` (503) while none is loaded."""
    bundle = runtime.champion
    if bundle is None:
        raise NotReadyError("no champion model loaded yet; train one with `driftline train`")
    return bundle


ChampionDep = Annotated[ModelBundle, Depends(get_champion)]


def get_session(runtime: RuntimeDep):  # type: ignore[no-untyped-def]
    with runtime.store.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# --- access control (README "Access control") ---------------------------------------------------


class Permission(enum.Enum):
    """What a token may do. The admin token grants every permission."""

    ADMIN = "admin"
    LABELS = "labels"
    READ = "read"


_SETTING = {
    Permission.ADMIN: "admin_token",
    Permission.LABELS: "labels_token",
    Permission.READ: "read_token",
}
_WHAT = {
    Permission.ADMIN: "use the admin endpoints",
    Permission.LABELS: "write labels",
    Permission.READ: "read predictions and events",
}

#: The WebSocket subprotocol a browser offers (with :data:`WS_TOKEN_PREFIX`) and the server
#: answers with; browsers cannot set an ``Authorization`` header on a WebSocket.
WS_SUBPROTOCOL = "driftline"
#: A subprotocol ``driftline.bearer.<base64url of the token, no padding>`` carries the token.
WS_TOKEN_PREFIX = "driftline.bearer."


def granted(settings: Settings, presented: bytes | None) -> frozenset[Permission]:
    """The permissions ``presented`` grants. It is compared with every configured token in
    constant time (:func:`hmac.compare_digest` on bytes, every comparison made whatever
    matched before); the admin token grants all of them."""
    if presented is None:
        return frozenset()
    matched = set()
    for permission, name in _SETTING.items():
        token: SecretStr | None = getattr(settings, name)
        if token is not None and hmac.compare_digest(
            presented, token.get_secret_value().encode("utf-8")
        ):
            matched.add(permission)
    return frozenset(Permission) if Permission.ADMIN in matched else frozenset(matched)


def authorize(settings: Settings, permission: Permission, presented: bytes | None) -> None:
    """Let a request through, or raise 401 (no token, or one no setting holds) or 403 (the admin
    endpoints are disabled, or the token holds another permission). A permission whose token
    is unset is open to anyone, except admin, which is then disabled."""
    if getattr(settings, _SETTING[permission]) is None:
        if permission is Permission.ADMIN:
            raise HTTPException(
                status_code=403,
                detail="admin endpoints are disabled: set DRIFTLINE_ADMIN_TOKEN to enable them",
            )
        return
    grants = granted(settings, presented)
    if permission in grants:
        return
    variable = f"DRIFTLINE_{_SETTING[permission].upper()}"
    if permission is not Permission.ADMIN:
        variable += " or DRIFTLINE_ADMIN_TOKEN"
    if grants:
        raise HTTPException(
            status_code=403, detail=f"this token may not {_WHAT[permission]} (needs {variable})"
        )
    raise HTTPException(
        status_code=401,
        detail=f"{'a wrong' if presented is not None else 'no'} token: to {_WHAT[permission]}, "
        f"send Authorization: Bearer <{variable}>",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _header_token(credentials: HTTPAuthorizationCredentials | None) -> bytes | None:
    # Starlette decodes header values as latin-1, so this gives back the bytes that were sent
    # (a non-ASCII header is a wrong token, never an error).
    return None if credentials is None else credentials.credentials.strip().encode("latin-1")


def subprotocol_token(offered: Sequence[str]) -> bytes | None:
    """The token a WebSocket client sent as a ``driftline.bearer.<base64url>`` subprotocol
    (``b""``, a wrong token, when it does not decode).

    >>> subprotocol_token(["driftline", "driftline.bearer.czNjcmV0LXRva2VuLTEyMzQ1Ng"])
    b's3cret-token-123456'
    >>> subprotocol_token(["driftline"]) is None
    True
    """
    for item in offered:
        if item.startswith(WS_TOKEN_PREFIX):
            encoded = item[len(WS_TOKEN_PREFIX) :]
            try:
                return base64.b64decode(
                    encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
                )
            except (binascii.Error, ValueError):
                return b""
    return None


def _bearer(permission: Permission) -> HTTPBearer:
    variable = f"DRIFTLINE_{_SETTING[permission].upper()}"
    extra = "" if permission is Permission.ADMIN else " or DRIFTLINE_ADMIN_TOKEN"
    return HTTPBearer(
        scheme_name=f"{permission.value}Token",
        description=f"To {_WHAT[permission]}: {variable}{extra}.",
        auto_error=False,
    )


_ADMIN_BEARER = _bearer(Permission.ADMIN)
_LABELS_BEARER = _bearer(Permission.LABELS)
_READ_BEARER = _bearer(Permission.READ)


def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_ADMIN_BEARER)],
) -> None:
    authorize(runtime.settings, Permission.ADMIN, _header_token(credentials))


def require_labels(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_LABELS_BEARER)],
) -> None:
    authorize(runtime.settings, Permission.LABELS, _header_token(credentials))


def require_read(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_READ_BEARER)],
) -> None:
    authorize(runtime.settings, Permission.READ, _header_token(credentials))


def require_read_ws(
    websocket: WebSocket,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_READ_BEARER)],
) -> str | None:
    """The read permission for a WebSocket: the ``Authorization`` header, or (browsers) the
    ``driftline.bearer.<base64url token>`` subprotocol. Returns the subprotocol to accept with:
    ``driftline`` when the client offered it (a browser refuses an answer naming none)."""
    runtime: ServingRuntime = websocket.app.state.runtime
    presented = _header_token(credentials)
    if presented is None:
        presented = subprotocol_token(websocket.scope.get("subprotocols", ()))
    authorize(runtime.settings, Permission.READ, presented)
    return WS_SUBPROTOCOL if WS_SUBPROTOCOL in websocket.scope.get("subprotocols", ()) else None


AdminDep = Annotated[None, Depends(require_admin)]
LabelsDep = Annotated[None, Depends(require_labels)]
ReadDep = Annotated[None, Depends(require_read)]
WsReadDep = Annotated[str | None, Depends(require_read_ws)]
