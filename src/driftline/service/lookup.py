"""Feast online lookups for /predict, off the event loop and shared between concurrent calls.

Requests that carry entity keys queue here; one worker thread takes everything queued for the
same model features and asks Feast once (``get_online_features`` with many entity rows), the
way the micro-batcher shares a model call. A lone request never waits for company. Each
lookup is timed into ``driftline_feast_lookup_seconds`` and traced as a
``driftline.feast.lookup`` span.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from driftline import tracing
from driftline.errors import (
    ConfigurationError,
    EntityNotFoundError,
    FeatureStoreUnavailableError,
)
from driftline.featurestore import FeastSpec, FeatureRepo

__all__ = ["FeastLookup"]

log = logging.getLogger(__name__)

#: Called after each Feast call with (seconds, outcome, entity rows).
LookupListener = Callable[[float, str, int], None]


@dataclass
class _Pending:
    spec: FeastSpec
    rows: Sequence[Mapping[str, Any]]
    future: asyncio.Future[list[dict[str, Any] | EntityNotFoundError]]


class FeastLookup:
    """Fetches a model's online features by entity, one Feast call per gathered batch."""

    def __init__(
        self,
        repo: FeatureRepo,
        *,
        max_rows: int = 512,
        on_lookup: LookupListener | None = None,
    ) -> None:
        self.repo = repo
        self.max_rows = max_rows
        self.on_lookup = on_lookup
        self._pending: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-feast")

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="driftline-feast")
        # Open the repository now (imports Feast, reads the registry) so the first request
        # does not pay for it; a failure is only logged: requests then say why.
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, lambda: self.repo.store)
        except Exception as exc:
            log.warning("Feast repository %s not opened at start-up: %s", self.repo.repo_path, exc)

    async def stop(self) -> None:
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(FeatureStoreUnavailableError("the server is stopping"))
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def fetch(
        self, spec: FeastSpec, rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """The features of each entity row, in order. Raises the
        :class:`EntityNotFoundError` of the first row whose entity is missing, or
        :class:`FeatureStoreUnavailableError`."""
        if self._wakeup is None:
            raise RuntimeError("FeastLookup.start() was not awaited")
        with tracing.span(
            "driftline.feast.lookup",
            {
                "driftline.feast.rows": len(rows),
                "driftline.feast.views": list(spec.views),
            },
        ) as current:
            future: asyncio.Future[list[dict[str, Any] | EntityNotFoundError]]
            future = asyncio.get_running_loop().create_future()
            self._pending.append(_Pending(spec, rows, future))
            self._wakeup.set()
            try:
                results = await future
            except FeatureStoreUnavailableError as exc:
                tracing.set_error(current, str(exc))
                raise
            out: list[dict[str, Any]] = []
            for result in results:
                if isinstance(result, EntityNotFoundError):
                    current.set_attribute("driftline.feast.outcome", "not_found")
                    raise result
                out.append(result)
            current.set_attribute("driftline.feast.outcome", "ok")
            return out

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take()
                try:
                    results = await loop.run_in_executor(self._executor, self._call, batch)
                except Exception as exc:  # the whole batch fails alike
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                offset = 0
                for item in batch:
                    n = len(item.rows)
                    if not item.future.done():
                        item.future.set_result(results[offset : offset + n])
                    offset += n

    def _take(self) -> list[_Pending]:
        """The first queued lookup and every later one for the same features, up to
        ``max_rows`` entity rows."""
        first = self._pending.pop(0)
        taken = [first]
        rows = len(first.rows)
        keep: list[_Pending] = []
        for item in self._pending:
            if item.spec == first.spec and rows + len(item.rows) <= self.max_rows:
                taken.append(item)
                rows += len(item.rows)
            else:
                keep.append(item)
        self._pending = keep
        return taken

    def _call(self, batch: list[_Pending]) -> list[dict[str, Any] | EntityNotFoundError]:
        rows = [row for item in batch for row in item.rows]
        started = time.perf_counter()
        outcome = "error"
        try:
            try:
                results = self.repo.fetch(batch[0].spec, rows)
            except ConfigurationError as exc:  # the server's repository, not the request
                raise FeatureStoreUnavailableError(str(exc)) from exc
            missing = sum(isinstance(r, EntityNotFoundError) for r in results)
            outcome = "ok" if not missing else "not_found"
            return results
        finally:
            if self.on_lookup is not None:
                self.on_lookup(time.perf_counter() - started, outcome, len(rows))
