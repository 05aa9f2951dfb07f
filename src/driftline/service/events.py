"""Live events for WebSocket clients: predictions (rate-capped per client) and model updates.

``publish`` never blocks and never waits for a client: each client has a bounded buffer and a
token bucket; an event that does not fit is dropped for that client and counted (the next event
it gets says how many it missed). A slow client therefore never slows /predict.
Call ``publish`` from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventHub", "Subscriber"]

#: Event types that are never rate-capped (rare and important).
CONTROL_EVENTS = frozenset({"model_updated", "hello", "report", "alert", "rollout"})


@dataclass(eq=False)  # identity hashing: subscribers live in a set
class Subscriber:
    queue: asyncio.Queue[dict[str, Any]]
    rate: float
    tokens: float
    last: float = field(default_factory=time.monotonic)
    dropped: int = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class EventHub:
    def __init__(
        self,
        *,
        rate: float = 20.0,
        buffer: int = 256,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.rate = rate
        self.buffer = buffer
        self.on_drop = on_drop
        self.subscribers: set[Subscriber] = set()

    def subscribe(self) -> Subscriber:
        sub = Subscriber(queue=asyncio.Queue(maxsize=self.buffer), rate=self.rate, tokens=self.rate)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def __len__(self) -> int:
        return len(self.subscribers)

    def publish(self, event: dict[str, Any]) -> None:
        if not self.subscribers:
            return
        control = event.get("type") in CONTROL_EVENTS
        for sub in self.subscribers:
            if not control and not sub.allow():
                self._drop(sub)
                continue
            if sub.queue.full():
                if not control:
                    self._drop(sub)
                    continue
                try:  # make room for a control event by dropping the oldest one
                    sub.queue.get_nowait()
                    self._drop(sub)
                except asyncio.QueueEmpty:
                    pass
            delivered = event
            if sub.dropped:
                delivered = {**event, "dropped": sub.dropped}
                sub.dropped = 0
            sub.queue.put_nowait(delivered)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped += 1
        if self.on_drop is not None:
            self.on_drop(1)
