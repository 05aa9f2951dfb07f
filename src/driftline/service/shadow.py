"""Shadow copies: answered traffic sent to the shadowing challenger off the hot path, its
answers logged as ``shadow`` records beside the champion's (agreement, latency, errors).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from driftline.models.bundle import ModelBundle
from driftline.schema import label_text
from driftline.service.batcher import MicroBatcher
from driftline.service.metrics import ServiceMetrics
from driftline.store import StoreWriter

__all__ = ["MAX_IN_FLIGHT", "ShadowCopies"]

#: Most copies in flight; past it copies are skipped (and counted), so that shadow work never
#: piles up behind traffic.
MAX_IN_FLIGHT = 64


class ShadowCopies:
    """The shadow copies of one worker, predicted on its micro-batcher."""

    def __init__(self, batcher: MicroBatcher, metrics: ServiceMetrics) -> None:
        self.batcher = batcher
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Copies sent and not yet logged."""
        return len(self._tasks)

    def send(
        self,
        challenger: ModelBundle,
        records: list[dict[str, Any]],
        answers: list[dict[str, Any]],
        writer: StoreWriter,
    ) -> None:
        """Have ``challenger`` predict ``records`` (answered with ``answers``) in the
        background and log its answers to ``writer``."""
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self.metrics.shadow_skipped.inc(len(records))
            return
        task = asyncio.create_task(self._copy(challenger, records, answers, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until the copies in flight are done (they finish on the batcher before it stops)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _copy(
        self,
        challenger: ModelBundle,
        records: list[dict[str, Any]],
        answers: list[dict[str, Any]],
        writer: StoreWriter,
    ) -> None:
        started = time.perf_counter()
        error: str | None = None
        results: list[Any] | None = None
        try:
            results = await self.batcher.predict(challenger, records)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        now = time.time()
        rows = []
        for i, answer in enumerate(answers):
            row: dict[str, Any]
            if results is None:
                row = {
                    "prediction": None,
                    "probabilities": {},
                    "confidence": None,
                    "agrees": None,
                    "error": error,
                }
            else:
                result = results[i]
                prediction = label_text(result.prediction)
                row = {
                    "prediction": prediction,
                    "probabilities": result.probabilities,
                    "confidence": result.confidence,
                    "agrees": prediction == label_text(answer["prediction"]),
                    "error": None,
                }
            rows.append(
                {
                    "request_id": answer["request_id"],
                    "ts": now,
                    "model_version": challenger.version or 0,
                    "latency_ms": elapsed_ms,
                    **row,
                }
            )
        for row in rows:
            if not writer.offer("shadow", row):
                self.metrics.shadow_skipped.inc()
