"""The background writer: the hot path hands records to a bounded queue; one thread batches them
into the store.

Guarantees (the README's "Durability" section says the same):

* A record offered to the writer is durable (committed to the store, or fsync'd to the spill
  log) within ``flush_interval`` seconds, like Redis's ``appendfsync everysec``: ``kill -9``
  loses at most that interval; :meth:`StoreWriter.stop` drains everything first.
* When the store fails, batches go to the spill log; the writer probes the store every
  ``retry_interval`` seconds and, once it answers, replays every spill file it can claim
  (idempotently) before writing new batches again.
* :meth:`StoreWriter.write_now` is for records that must be durable before the caller answers
  (labels): it writes synchronously, or spills with fsync when the store is down.
* A full queue is never a silent drop: :meth:`offer` returns ``False`` and the caller decides
  (the API waits briefly, then answers 503).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from driftline import tracing
from driftline.errors import StoreUnavailableError
from driftline.store.engine import is_reachable
from driftline.store.spill import SpilledRecord, SpillLog, claim_spill_files

__all__ = ["InsertFn", "StoreWriter", "WriterListener"]

log = logging.getLogger(__name__)

InsertFn = Callable[[Sequence[dict[str, Any]], Session], Any]


class WriterListener:
    """Hooks the service uses to export writer metrics; the default does nothing."""

    def written(self, kind: str, n: int, lag_seconds: float) -> None:
        """``n`` records of ``kind`` committed; ``lag_seconds`` from the oldest one's ``ts``."""

    def spilled(self, kind: str, n: int) -> None:
        """``n`` records of ``kind`` went to the spill log."""

    def replayed(self, kind: str, n: int) -> None:
        """``n`` records of ``kind`` moved from the spill log into the store."""

    def store_state(self, up: bool) -> None:
        """The store became reachable (``True``) or unreachable (``False``)."""


_STOP = object()


class StoreWriter:
    """Batches records of registered kinds into the store on a background thread."""

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        inserters: dict[str, InsertFn],
        spill_dir: Path,
        *,
        queue_size: int = 20_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        retry_interval: float = 1.0,
        listener: WriterListener | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.inserters = dict(inserters)
        self.spill = SpillLog(spill_dir)
        self.spill_dir = spill_dir
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.linger = min(0.05, flush_interval / 4)
        self.retry_interval = retry_interval
        self.listener = listener or WriterListener()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._store_up = True
        self._next_probe = 0.0
        self._state_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.written_total = 0
        self.spilled_total = 0
        self.replayed_total = 0

    # --- hot path ---------------------------------------------------------------------------

    def offer(self, kind: str, row: dict[str, Any]) -> bool:
        """Queue one record without blocking; ``False`` when the queue is full."""
        try:
            self._queue.put_nowait((kind, row))
        except queue.Full:
            return False
        self._idle.clear()
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def capacity(self) -> int:
        return self._queue.maxsize

    @property
    def store_up(self) -> bool:
        return self._store_up

    @property
    def spill_pending(self) -> int:
        """Records this writer spilled that have not been replayed yet."""
        return max(0, self.spilled_total - self.replayed_total)

    # --- synchronous, durable writes ----------------------------------------------------------

    def write_now(self, kind: str, rows: Sequence[dict[str, Any]]) -> str:
        """Make ``rows`` durable before returning: ``"store"`` or ``"spill"``.

        Raises :class:`StoreUnavailableError` only when neither the store nor the local disk
        could take them.
        """
        with tracing.span(
            "driftline.writer.write_now",
            {"driftline.write.kind": kind, "driftline.rows": len(rows)},
        ) as span:
            durable = self._write_now(kind, rows)
            span.set_attribute("driftline.write.durable", durable)
        return durable

    def _write_now(self, kind: str, rows: Sequence[dict[str, Any]]) -> str:
        if self._store_up:
            try:
                with self.sessions.begin() as session:
                    self.inserters[kind](rows, session)
                self.listener.written(kind, len(rows), 0.0)
                return "store"
            except Exception as exc:
                log.warning(
                    "store write failed (%s); spilling %d %s record(s)", exc, len(rows), kind
                )
                self._mark_down()
        try:
            self.spill.append([(kind, dict(r)) for r in rows])
        except OSError as exc:
            raise StoreUnavailableError(
                f"store unreachable and spill log not writable: {exc}"
            ) from exc
        self.spilled_total += len(rows)
        self.listener.spilled(kind, len(rows))
        return "spill"

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="driftline-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write (or spill) everything queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("writer did not stop within %.1fs; %d records queued", timeout, self.depth)
        self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued so far is durable; ``True`` if it happened in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.01):
                return True
            time.sleep(0.005)
        return False

    def replay_now(self) -> int:
        """Replay spill files now if the store answers; returns the records replayed."""
        if not is_reachable(self.engine):
            return 0
        return self._replay()

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        self._replay_if_reachable()
        stopping = False
        while True:
            batch, stopping = self._take_batch(stopping)
            if batch:
                self._write_batch(batch)
            elif self._queue.empty():
                self._idle.set()
            due = time.monotonic() >= self._next_probe
            if due and (not self._store_up or self.spill_pending or self.spill.pending):
                # Down: probe and replay. Up with a non-empty spill file: a label spilled
                # while the store was coming back; move it in too.
                self._next_probe = time.monotonic() + self.retry_interval
                self._replay_if_reachable()
            if stopping and self._queue.empty():
                self._finish()
                self._idle.set()
                return

    def _finish(self) -> None:
        """On a graceful stop: move what was spilled into the store if it answers now;
        otherwise the spill file stays for the next process to replay."""
        if self.spill_pending or self.spill.pending:
            self._replay_if_reachable()
        self.spill.release()

    def _take_batch(self, stopping: bool) -> tuple[list[SpilledRecord], bool]:
        batch: list[SpilledRecord] = []
        wait = 0.0 if stopping else min(self.flush_interval, 0.25)
        try:
            item = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
        except queue.Empty:
            return batch, stopping
        # Linger briefly for more records: one commit per few dozen rows instead of one per
        # request keeps the writer's CPU (and GIL) share small at any rate. Durability still
        # comes well within flush_interval.
        linger_until = time.monotonic() + (0.0 if stopping else self.linger)
        while True:
            if item is _STOP:
                stopping = True
                linger_until = 0.0
            else:
                batch.append(item)
            if len(batch) >= self.batch_size:
                break
            remaining = linger_until - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch, stopping

    def _write_batch(self, batch: list[SpilledRecord]) -> None:
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for kind, row in batch:
            by_kind[kind].append(row)
        kinds = ",".join(sorted(by_kind))
        with tracing.span(
            "driftline.writer.batch", {"driftline.write.kind": kinds, "driftline.rows": len(batch)}
        ) as span:
            durable = self._commit_or_spill(batch, by_kind)
            span.set_attribute("driftline.write.durable", durable)

    def _commit_or_spill(
        self, batch: list[SpilledRecord], by_kind: dict[str, list[dict[str, Any]]]
    ) -> str:
        """One transaction for the batch, or the spill log; returns which."""
        if self._store_up:
            try:
                with self.sessions.begin() as session:
                    for kind, rows in by_kind.items():
                        self.inserters[kind](rows, session)
            except Exception as exc:
                log.warning("store write failed (%s); spilling %d record(s)", exc, len(batch))
                self._mark_down()
            else:
                now = time.time()
                self.written_total += len(batch)
                for kind, rows in by_kind.items():
                    oldest = min(float(r.get("ts", now)) for r in rows)
                    self.listener.written(kind, len(rows), max(0.0, now - oldest))
                return "store"
        self._spill_batch(batch, by_kind)
        return "spill"

    def _spill_batch(
        self, batch: list[SpilledRecord], by_kind: dict[str, list[dict[str, Any]]]
    ) -> None:
        while True:
            try:
                self.spill.append(batch)
                break
            except OSError as exc:  # disk full or gone: keep the batch, keep trying
                log.error("cannot write spill log (%s); retrying in 1s", exc)
                time.sleep(1.0)
        self.spilled_total += len(batch)
        for kind, rows in by_kind.items():
            self.listener.spilled(kind, len(rows))

    def _mark_down(self) -> None:
        with self._state_lock:
            if self._store_up:
                self._store_up = False
                self.listener.store_state(False)
            self._next_probe = time.monotonic() + self.retry_interval

    def _replay_if_reachable(self) -> None:
        if not is_reachable(self.engine):
            self._mark_down()
            return
        try:
            self._replay()
        except Exception as exc:
            log.warning("replay failed (%s); will retry", exc)
            self._mark_down()
            return
        with self._state_lock:
            if not self._store_up:
                self._store_up = True
                self.listener.store_state(True)
                log.info("store reachable again; spill log replayed")

    def _replay(self) -> int:
        """Move every claimable spill file into the store, oldest first."""
        self.spill.release()
        replayed = 0
        for path, records in claim_spill_files(self.spill_dir):
            by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for kind, row in records:
                by_kind[kind].append(row)
            with self.sessions.begin() as session:
                for kind, rows in by_kind.items():
                    inserter = self.inserters.get(kind)
                    if inserter is None:
                        log.error("spill file %s has unknown record kind %r; kept", path, kind)
                        raise RuntimeError(f"unknown record kind {kind!r} in {path}")
                    for start in range(0, len(rows), self.batch_size):
                        inserter(rows[start : start + self.batch_size], session)
            path.unlink()
            for kind, rows in by_kind.items():
                self.listener.replayed(kind, len(rows))
            replayed += len(records)
        self.replayed_total += replayed
        return replayed
