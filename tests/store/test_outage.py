"""The store goes away mid-traffic: every acknowledged prediction and label must land."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
from sqlalchemy import func, select

from driftline.config import Settings
from driftline.models import ModelBundle
from driftline.registry import Registry
from driftline.service import create_app
from driftline.store import open_store
from driftline.store.tables import Label, Prediction
from tests.support.records import row
from tests.support.servers import free_port, serve_process, wait_ready
from tests.support.tcpproxy import TcpProxy


async def _traffic(
    client: httpx.AsyncClient, prefix: str, n: int, acked: list[str], labelled: list[str]
) -> None:
    async def one(i: int) -> None:
        rid = f"{prefix}-{i}"
        r = await client.post("/predict", json={"features": row(i), "request_id": rid})
        if r.status_code == 200:
            acked.append(rid)
        if i % 3 == 0:
            r = await client.post("/labels", json={"request_id": rid, "label": i % 2})
            if r.status_code == 200:
                labelled.append(rid)

    for start in range(0, n, 8):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 8))))


@pytest.mark.postgres
def test_postgres_outage_loses_nothing_acknowledged(
    pg_url: str, settings: Settings, trained_bundle: ModelBundle
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    proxied = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = settings.model_copy(update={"database_url": proxied})
    store = open_store(proxied)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    app = create_app(settings, store=store)
    acked: list[str] = []
    labelled: list[str] = []
    outage_statuses: list[str] = []

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            await _traffic(client, "before", 120, acked, labelled)
            proxy.cut()
            r = await client.post("/labels", json={"request_id": "during-0", "label": 1})
            outage_statuses.append(r.json()["durable"])
            await _traffic(client, "during", 150, acked, labelled)
            writer = app.state.runtime.writer
            await asyncio.to_thread(writer.flush, 10)
            assert not writer.store_up and writer.spill_pending > 0
            ready = await client.get("/ready")
            assert ready.status_code == 503 and "store unreachable" in ready.json()["reasons"]
            proxy.restore()
            await _traffic(client, "after", 120, acked, labelled)

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()
    assert outage_statuses == ["spill"]
    assert len(acked) == 390  # the outage never failed a prediction
    direct = open_store(pg_url, migrate=False)
    with direct.sessions() as session:
        ids = set(session.scalars(select(Prediction.request_id)))
        label_ids = set(session.scalars(select(Label.request_id)))
        count = session.scalar(select(func.count()).select_from(Prediction))
    direct.dispose()
    store.dispose()
    assert set(acked) <= ids and count == len(ids) == 390
    assert set(labelled) <= label_ids
    assert not list(settings.spill_dir.glob("spill-*.jsonl"))


@pytest.mark.postgres
@pytest.mark.slow
def test_kill_9_loses_at_most_the_flush_interval_and_spill_replays_on_restart(
    pg_url: str, settings: Settings, trained_bundle: ModelBundle
) -> None:
    """Acknowledged records older than the flush interval survive ``kill -9``, including
    those spilled to disk during an outage (replayed by the next process)."""
    proxy = TcpProxy("127.0.0.1", 5432)
    proxied = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    store = open_store(pg_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve_process(settings.home, proxied, port, {})
    acked: list[str] = []
    try:
        wait_ready(url, proc)
        with httpx.Client(base_url=url, timeout=5) as client:
            for i in range(60):
                r = client.post("/predict", json={"features": row(i), "request_id": f"k-{i}"})
                assert r.status_code == 200
                acked.append(f"k-{i}")
            proxy.cut()
            for i in range(60, 120):
                r = client.post("/predict", json={"features": row(i), "request_id": f"k-{i}"})
                assert r.status_code == 200
                acked.append(f"k-{i}")
            r = client.post("/labels", json={"request_id": "k-70", "label": 1})
            assert r.json()["durable"] == "spill"
        time.sleep(1.5)  # > flush interval (0.5 s): everything acknowledged is durable now
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proxy.restore()
        restarted = serve_process(settings.home, pg_url, port, {})
        try:
            wait_ready(url, restarted)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with store.sessions() as session:
                    ids = set(session.scalars(select(Prediction.request_id)))
                    labels = set(session.scalars(select(Label.request_id)))
                if set(acked) <= ids and "k-70" in labels:
                    break
                time.sleep(0.3)
            assert set(acked) <= ids and len(ids) == 120
            assert "k-70" in labels
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
        store.dispose()
