from __future__ import annotations

import asyncio

from driftline.service.events import EventHub


def test_a_client_that_never_reads_costs_a_bounded_buffer() -> None:
    async def scenario() -> tuple[int, int, list[str]]:
        dropped: list[int] = []
        hub = EventHub(rate=1_000_000, buffer=10, on_drop=dropped.append)
        slow = hub.subscribe()
        for i in range(1_000):
            hub.publish({"type": "prediction", "i": i})
        hub.publish({"type": "model_updated", "version": 2})
        kinds = []
        while not slow.queue.empty():
            kinds.append(slow.queue.get_nowait()["type"])
        return slow.queue.maxsize, sum(dropped), kinds

    size, dropped, kinds = asyncio.run(scenario())
    assert size == 10 and len(kinds) == 10
    assert kinds[-1] == "model_updated"  # control events get through, evicting the oldest
    assert dropped == 1_000 - 9


def test_prediction_events_are_rate_capped_per_client_and_drops_reported() -> None:
    async def scenario() -> list[dict[str, object]]:
        hub = EventHub(rate=5, buffer=100)
        sub = hub.subscribe()
        for i in range(50):
            hub.publish({"type": "prediction", "i": i})
        await asyncio.sleep(0.25)  # refills about one token
        hub.publish({"type": "prediction", "i": 50})
        out = []
        while not sub.queue.empty():
            out.append(sub.queue.get_nowait())
        return out

    events = asyncio.run(scenario())
    assert [e["i"] for e in events] == [0, 1, 2, 3, 4, 50]
    assert events[-1]["dropped"] == 45
    assert "dropped" not in events[0]


def test_publishing_without_subscribers_is_free() -> None:
    hub = EventHub()
    hub.publish({"type": "prediction"})  # no loop, no subscribers: nothing to do
    assert len(hub) == 0
