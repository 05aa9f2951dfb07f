"""Adaptive micro-batching: concurrent /predict calls share one model call.

Requests queue while the model is busy; each model call takes everything queued (up to
``max_size`` rows). When recent calls carried several rows (there is concurrency), the batcher
also waits up to ``max_wait_ms`` for more before calling the model; at concurrency 1 it never
waits, so a lone request pays no extra latency. Model calls run on one dedicated thread, so
the event loop keeps accepting requests meanwhile.

A failing batch is retried row by row: one bad row fails only its own request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from driftline.logs import current_request_id
from driftline.models.base import Predictions
from driftline.models.bundle import ModelBundle
from driftline.threads import limit_native_threads, native_thread_pools

__all__ = ["BatchListener", "MicroBatcher", "RowResult"]

log = logging.getLogger(__name__)

#: Called on the model thread after each successful model call (profiles, metrics).
BatchListener = Callable[[ModelBundle, Sequence[Mapping[str, Any]], Predictions], None]


@dataclass(frozen=True)
class RowResult:
    prediction: Any
    probabilities: dict[str, float]
    confidence: float
    proba: Sequence[float]


@dataclass
class _Item:
    bundle: ModelBundle
    records: Sequence[Mapping[str, Any]]
    future: asyncio.Future[list[RowResult]]
    request_id: str | None = None  # for log lines written on the model thread


class MicroBatcher:
    """Gathers rows from concurrent callers into shared model calls."""

    def __init__(
        self,
        *,
        max_wait_ms: float = 1.0,
        max_size: int = 256,
        on_batch_rows: Callable[[int], None] | None = None,
        native_threads: int | None = None,
    ) -> None:
        self.max_wait = max_wait_ms / 1000.0
        self.max_size = max_size
        self.on_batch_rows = on_batch_rows
        #: OpenMP threads of the model thread; ``None`` leaves them alone. (BLAS pools are
        #: process-wide: the worker's budget sizes them.)
        self.native_threads = native_threads
        self.listeners: list[BatchListener] = []
        self._pending: collections.deque[_Item] = collections.deque()
        # Rows in _pending, kept as items come and go: the gathering loop asks every 0.2 ms
        # (summing the queue each time cost ~1 % of the server's CPU at 64 requests in flight).
        self._pending_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="driftline-model", initializer=self._init_thread
        )
        self._recent_rows = 1.0  # moving average of rows per model call

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="driftline-batcher")

    async def stop(self, timeout: float = 30.0) -> None:
        """Answer the requests already queued, then stop. Bounded: requests still queued after
        ``timeout`` seconds (or once the batching task has ended) fail instead of holding the
        shutdown, and the server's writer still drains what was acknowledged."""
        if self._task is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while self._pending and not self._task.done() and loop.time() < deadline:
                await asyncio.sleep(0.001)
            if self._pending:
                why = "its task ended" if self._task.done() else f"{timeout:g}s passed"
                log.error(
                    "micro-batcher stopping with %d request(s) unanswered (%s)",
                    len(self._pending),
                    why,
                )
                for item in self._pending:
                    if not item.future.done():
                        item.future.set_exception(RuntimeError("the server is stopping"))
                self._pending.clear()
                self._pending_rows = 0
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    def _init_thread(self) -> None:
        if self.native_threads is not None:
            limit_native_threads(self.native_threads, openmp_only=True)

    async def native_thread_pools(self) -> list[dict[str, Any]]:
        """The native thread pools as threadpoolctl sees them on the model thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, native_thread_pools)

    async def predict(
        self, bundle: ModelBundle, records: Sequence[Mapping[str, Any]]
    ) -> list[RowResult]:
        """Predict ``records`` (already validated) with ``bundle``, sharing a model call."""
        if self._wakeup is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future: asyncio.Future[list[RowResult]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(bundle, records, future, current_request_id()))
        self._pending_rows += len(records)
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                if self.max_wait > 0 and self._recent_rows > 1.5:
                    await self._gather_more()
                items = self._take()
                rows = sum(len(i.records) for i in items)
                self._recent_rows = 0.8 * self._recent_rows + 0.2 * rows
                try:
                    outcomes = await loop.run_in_executor(self._executor, self._call, items)
                except Exception as exc:  # the model thread itself failed
                    outcomes = [exc] * len(items)
                for item, outcome in zip(items, outcomes, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        item.future.set_exception(outcome)
                    else:
                        item.future.set_result(outcome)

    async def _gather_more(self) -> None:
        deadline = time.perf_counter() + self.max_wait
        while self._rows_pending() < self.max_size and time.perf_counter() < deadline:
            await asyncio.sleep(0)
            if self._rows_pending() < self.max_size:
                await asyncio.sleep(min(0.0002, self.max_wait))

    def _rows_pending(self) -> int:
        return self._pending_rows

    def _take(self) -> list[_Item]:
        taken: list[_Item] = []
        rows = 0
        while self._pending and (
            not taken or rows + len(self._pending[0].records) <= self.max_size
        ):
            item = self._pending.popleft()
            taken.append(item)
            rows += len(item.records)
        self._pending_rows -= rows
        return taken

    # --- on the model thread ----------------------------------------------------------------

    def _call(self, items: list[_Item]) -> list[list[RowResult] | BaseException]:
        outcomes: list[list[RowResult] | BaseException] = [[] for _ in items]
        groups: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(id(item.bundle), []).append(index)
        for indices in groups.values():
            bundle = items[indices[0]].bundle
            records = [r for i in indices for r in items[i].records]
            try:
                predictions = bundle.predict_records(records)
            except Exception:
                for i in indices:
                    outcomes[i] = self._call_alone(items[i])
                continue
            self._notify(bundle, records, predictions)
            offset = 0
            for i in indices:
                n = len(items[i].records)
                outcomes[i] = _rows(predictions, offset, n)
                offset += n
        return outcomes

    def _call_alone(self, item: _Item) -> list[RowResult] | BaseException:
        try:
            predictions = item.bundle.predict_records(item.records)
        except Exception as exc:
            log.warning(
                "model call failed for one request: %s",
                exc,
                extra={"request_id": item.request_id} if item.request_id else None,
            )
            return exc
        self._notify(item.bundle, item.records, predictions)
        return _rows(predictions, 0, len(item.records))

    def _notify(
        self, bundle: ModelBundle, records: Sequence[Mapping[str, Any]], predictions: Predictions
    ) -> None:
        if self.on_batch_rows is not None:
            self.on_batch_rows(len(records))
        for listener in self.listeners:
            try:
                listener(bundle, records, predictions)
            except Exception:
                log.exception("batch listener failed")


def _rows(predictions: Predictions, offset: int, n: int) -> list[RowResult]:
    out: list[RowResult] = []
    for i in range(offset, offset + n):
        label, probs, confidence = predictions.row(i)
        out.append(RowResult(label, probs, confidence, predictions.proba[i].tolist()))
    return out
