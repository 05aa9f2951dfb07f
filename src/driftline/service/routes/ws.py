"""WS /ws: live prediction events (rate-capped per client) and model_updated events."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from driftline.service.deps import WsReadDep
from driftline.service.runtime import ServingRuntime

router = APIRouter(tags=["live"])


@router.websocket("/ws")
async def events(websocket: WebSocket, subprotocol: WsReadDep) -> None:
    """Stream JSON events: ``hello`` on connect, then ``prediction`` (at most
    ``DRIFTLINE_WS_MAX_EVENTS_PER_SECOND`` per client; an event carries ``dropped`` when some
    were skipped) and ``model_updated``."""
    runtime: ServingRuntime = websocket.app.state.runtime
    await websocket.accept(subprotocol=subprotocol)
    sub = runtime.hub.subscribe()
    runtime.refresh_gauges()
    champion = runtime.champion
    await websocket.send_json(
        {
            "type": "hello",
            "ts": time.time(),
            "model_version": champion.version if champion else None,
            "worker": runtime.worker_id,
        }
    )

    async def receive_until_closed() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    closed = asyncio.create_task(receive_until_closed())
    try:
        while not closed.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await websocket.send_json(getter.result())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        closed.cancel()
        runtime.hub.unsubscribe(sub)
        runtime.refresh_gauges()
