"""GET /dashboard: the live dashboard page, its assets, Plotly's JavaScript and its start state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse

from driftline.service import dashboard_page
from driftline.service.deps import ReadDep, RuntimeDep
from driftline.service.schemas import DashboardState

router = APIRouter(tags=["dashboard"])

#: The page's own files may change with a release; Plotly's URL carries its version.
ASSET_CACHE = "public, max-age=300"
PLOTLY_CACHE = "public, max-age=604800, immutable"


@router.get("/dashboard", response_class=HTMLResponse)
async def page() -> HTMLResponse:
    """The live dashboard: models and rollout, traffic and latency, predictions, drift per
    feature over time, estimated vs realized accuracy, open alerts, the audit timeline;
    updated live over ``WS /ws``."""
    return HTMLResponse(dashboard_page.index_html(), headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/state", response_model=DashboardState)
async def state(request: Request, runtime: RuntimeDep, _read: ReadDep) -> dict[str, Any]:
    """What the dashboard shows at start (and again after a report, alert, model or rollout
    event)."""
    rollout = await dashboard_page.read_rollout(request.app)
    return await run_in_threadpool(dashboard_page.dashboard_state, runtime, rollout=rollout)


@router.get("/dashboard/plotly.min.js", response_class=Response)
async def plotly_js(request: Request) -> Response:
    """Plotly's JavaScript, from the ``plotly`` Python package (no CDN); gzip when accepted."""
    js = dashboard_page.plotly_js()
    headers = {"Cache-Control": PLOTLY_CACHE, "ETag": js.etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == js.etag:
        return Response(status_code=304, headers=headers)
    body = js.raw
    if "gzip" in request.headers.get("accept-encoding", ""):
        body, headers["Content-Encoding"] = js.gzipped, "gzip"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get("/dashboard/assets/{name}", response_class=FileResponse)
async def asset(name: str) -> FileResponse:
    """The page's script, style sheet and icon."""
    media_type = dashboard_page.ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no dashboard asset {name!r}")
    return FileResponse(
        dashboard_page.asset_path(name),
        media_type=media_type,
        headers={"Cache-Control": ASSET_CACHE},
    )
