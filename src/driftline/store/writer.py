"""The background writer: the hot path hands records to a bounded queue; one thread batches them
into the store.

Long on purpose (600+ lines): one thread's state machine; the guarantees hold together.

Guarantees (the README's "Durability" section says the same):

* A record offered to the writer is durable (committed to the store, or fsync'd to the spill
  log) within ``flush_interval`` seconds, like Redis's ``appendfsync everysec``: ``kill -9``
  loses at most that interval; :meth:`StoreWriter.stop` drains everything first.
* Every store call is bounded in time: the writer waits for a transaction until the oldest
  record of its batch is ``flush_interval`` old (at least half of ``commit_timeout``), then
  spills the batch and counts the store as down. A commit hanging on a silent network
  therefore never keeps acknowledged records only in memory; if it commits after all, the
  idempotent inserts make the replay of the spilled copy a no-op.
* When the store fails, batches go to the spill log; the writer probes the store every
  ``retry_interval`` seconds and, once it answers, replays every spill file it can claim
  (idempotently, a few batches at a time between new batches) until none is left.
* A *record* error (the store refuses a value: encoding, constraint, type) is not a store
  failure: the batch is split in halves until the refused records are isolated, the rest is
  written, and each refused record goes to the ``dead_letters`` table with its error (or, if
  the store will not take even that, to ``dead-letters.jsonl`` in the spill folder). The same
  holds for a spill file under replay, so one poison row never blocks the others.
* :meth:`StoreWriter.write_now` is for records that must be durable before the caller answers
  (labels, stream consumers): it writes synchronously, waiting at most ``sync_timeout``
  (default ``max(2, 4 × commit_timeout)`` seconds), or spills with fsync.
* A full queue is never a silent drop: :meth:`offer` returns ``False`` and the caller decides
  (the API waits briefly, then answers 503).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import itertools
import json
import logging
import os
import queue
import threading
import time
import unicodedata
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from driftline import tracing
from driftline.errors import StoreUnavailableError
from driftline.store.engine import is_reachable
from driftline.store.queries import insert_dead_letters
from driftline.store.spill import SpilledRecord, SpillLog, claim_spill_files

__all__ = [
    "DEAD_LETTER_FILE",
    "InsertFn",
    "StoreTimeoutError",
    "StoreWriter",
    "UnknownRecordKindError",
    "WriterListener",
    "is_record_error",
]

log = logging.getLogger(__name__)

InsertFn = Callable[[Sequence[dict[str, Any]], Session], Any]
#: Where refused records go when the store will not take even the dead letter.
DEAD_LETTER_FILE = "dead-letters.jsonl"
_ERROR_CHARS = 2_000


class StoreTimeoutError(TimeoutError):
    """A store call did not return in time (a silent network, a held lock)."""


class UnknownRecordKindError(ValueError):
    """A record of a kind this writer has no inserter for (a record error)."""


def is_record_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the fault of the records rather than of the store.

    Record errors (the store or the driver refused a value: a NUL character, a string longer
    than its column, a broken constraint, an unencodable or unserialisable value) will fail
    again on every retry, so the writer isolates and dead-letters those records. Anything
    else (connection refused or lost, timeouts, a missing table) is a store error: retrying
    later may cure it, so the records are spilled.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return False
        return isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError))
    if isinstance(exc, sa_exc.StatementError):  # a value the driver could not bind
        return isinstance(exc.orig, (ValueError, TypeError, OverflowError))
    if isinstance(exc, StoreTimeoutError):
        return False
    return isinstance(exc, (ValueError, TypeError, OverflowError, KeyError))


class WriterListener:
    """Hooks the service uses to export writer metrics; the default does nothing."""

    def written(self, kind: str, n: int, lag_seconds: float) -> None:
        """``n`` records of ``kind`` committed; ``lag_seconds`` from the oldest one's ``ts``."""

    def spilled(self, kind: str, n: int) -> None:
        """``n`` records of ``kind`` went to the spill log."""

    def replayed(self, kind: str, n: int) -> None:
        """``n`` records of ``kind`` moved from the spill log into the store."""

    def dead_lettered(self, kind: str, n: int) -> None:
        """``n`` records of ``kind`` were refused by the store and dead-lettered."""

    def store_state(self, up: bool) -> None:
        """The store became reachable (``True``) or unreachable (``False``)."""


# --- bounded store calls ----------------------------------------------------------------------


class _Call:
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout: float) -> Any:
        if not self.done.wait(max(0.0, timeout)):
            raise StoreTimeoutError(f"no answer from the store within {max(0.0, timeout):.2f}s")
        if self.error is not None:
            raise self.error
        return self.result


class _Caller:
    """Runs the writer thread's store calls, one at a time, on a helper thread, so the writer
    can stop waiting. A call given up on goes on (until the driver's own timeouts end it);
    meanwhile every new call is refused at once."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.current: _Call | None = None

    @property
    def busy(self) -> bool:
        current = self.current
        return current is not None and not current.done.is_set()

    def __call__(self, fn: Callable[[], Any], timeout: float) -> Any:
        if self.busy:
            raise StoreTimeoutError("an earlier store call has not returned yet")
        call = _Call(fn)
        self.current = call
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="driftline-writer-store", daemon=True
            )
            self._thread.start()
        self._jobs.put(call)
        return call.wait(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a call given up on to return; ``True`` if none
        is running any more."""
        current = self.current
        return current is None or current.done.wait(max(0.0, timeout))

    def close(self) -> None:
        """Let the helper thread end (after the call in hand, if one hangs)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _loop(self) -> None:
        while (call := self._jobs.get()) is not None:
            call.run()


def _call_in_thread(fn: Callable[[], Any], timeout: float) -> Any:
    """One bounded call on its own daemon thread (for callers other than the writer thread)."""
    call = _Call(fn)
    threading.Thread(target=call.run, name="driftline-store-call", daemon=True).start()
    return call.wait(timeout)


CallFn = Callable[[Callable[[], Any], float], Any]


# --- what one attempt at a list of records did -------------------------------------------------


@dataclass
class _Outcome:
    written: list[SpilledRecord] = field(default_factory=list)
    dead: list[tuple[SpilledRecord, str]] = field(default_factory=list)
    unwritten: list[SpilledRecord] = field(default_factory=list)
    failure: BaseException | None = None


def _printable(text: str) -> str:
    """``text`` with control characters (but newlines) and lone surrogates escaped."""
    out = []
    for ch in text:
        if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def error_text(exc: BaseException) -> str:
    """A short, storable description of a record error (the driver's message, no SQL)."""
    base: BaseException = exc
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, BaseException):
        base = exc.orig
    name = type(base).__qualname__
    module = type(base).__module__
    if module != "builtins":
        name = f"{module}.{name}"
    text = _printable(f"{name}: {base}".strip())
    return text[:_ERROR_CHARS]


def _record_json(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str, ensure_ascii=True)


def _lag(rows: Iterable[dict[str, Any]], now: float) -> float:
    oldest = now
    for r in rows:
        with contextlib.suppress(TypeError, ValueError):
            oldest = min(oldest, float(r.get("ts", now)))
    return max(0.0, now - oldest)


def _by_kind(records: Iterable[SpilledRecord]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind, row in records:
        grouped[kind].append(row)
    return grouped


_STOP = object()
#: The writer's longest nap while it lingers for more records.
_LINGER_NAP = 0.005
_QueueItem = tuple[str, dict[str, Any], float]


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
        commit_timeout: float | None = None,
        sync_timeout: float | None = None,
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
        #: The longest wait for one store transaction (a batch gets at least half of it).
        self.commit_timeout = (
            max(flush_interval, 0.25) if commit_timeout is None else commit_timeout
        )
        #: How long :meth:`write_now` waits for the store before it spills (its caller waits
        #: anyway, and holds the records: no flush deadline applies).
        self.sync_timeout = (
            max(2.0, 4 * self.commit_timeout) if sync_timeout is None else sync_timeout
        )
        self.listener = listener or WriterListener()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._caller = _Caller()
        self._late: tuple[_Call, list[SpilledRecord]] | None = None
        self._store_up = True
        self._next_probe = 0.0
        self._replay_wanted = True
        self._replay_cursor: dict[Path, int] = {}
        self._state_lock = threading.Lock()
        self._dead_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        # Records accepted by offer() and records the writer thread has made durable (stored,
        # spilled or dead-lettered), in queue order: flush() waits for a watermark, so it
        # returns under steady traffic too (waiting for an empty queue never would).
        self._offer_lock = threading.Lock()
        self._offered = 0
        self._handled = 0
        self._beat = time.monotonic()
        #: Monotonic times: the oldest record of the batch in hand, the oldest spilled record
        #: not replayed yet (``None``: none).
        self._inflight_since: float | None = None
        self._spilled_since: float | None = None
        self.written_total = 0
        self.spilled_total = 0
        self.replayed_total = 0
        self.dead_lettered_total = 0

    # --- hot path ---------------------------------------------------------------------------

    def offer(self, kind: str, row: dict[str, Any]) -> bool:
        """Queue one record without blocking; ``False`` when the queue is full."""
        try:
            with self._offer_lock:
                self._queue.put_nowait((kind, row, time.monotonic()))
                self._offered += 1
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

    @property
    def dead_letter_file(self) -> Path:
        return self.spill_dir / DEAD_LETTER_FILE

    # --- draining: what /ready and /metrics show ----------------------------------------------

    def oldest_unwritten_age(self) -> float:
        """Seconds the oldest record this writer holds (queued, in a batch being written, or
        spilled and not replayed) has waited for the store; 0 when there is none."""
        times = [t for t in (self._inflight_since, self._spilled_since) if t is not None]
        with self._queue.mutex:
            for item in self._queue.queue:
                if item is not _STOP:
                    times.append(item[2])
                    break
        if not times:
            return 0.0
        return max(0.0, time.monotonic() - min(times))

    def problems(self, max_unwritten_age: float) -> list[str]:
        """Why this writer is not draining (empty when it is): its thread died or made no
        progress for ``max_unwritten_age`` seconds, or a record has waited longer."""
        reasons: list[str] = []
        thread = self._thread
        if thread is not None:
            silent = time.monotonic() - self._beat
            if not thread.is_alive():
                reasons.append("store writer thread is not running")
            elif silent > max_unwritten_age:
                reasons.append(f"store writer stuck: no progress for {silent:.0f}s")
        age = self.oldest_unwritten_age()
        if age > max_unwritten_age:
            reasons.append(
                f"store writer not draining: the oldest unwritten record is {age:.0f}s old "
                f"(limit {max_unwritten_age:g}s)"
            )
        return reasons

    # --- synchronous, durable writes ----------------------------------------------------------

    def write_now(self, kind: str, rows: Sequence[dict[str, Any]]) -> str:
        """Make ``rows`` durable before returning: ``"store"`` or ``"spill"``.

        Records the store refuses are dead-lettered (they count as stored). Raises
        :class:`StoreUnavailableError` only when neither the store nor the local disk could
        take them.
        """
        with tracing.span(
            "driftline.writer.write_now",
            {"driftline.write.kind": kind, "driftline.rows": len(rows)},
        ) as span:
            durable = self._write_now(kind, rows)
            span.set_attribute("driftline.write.durable", durable)
        return durable

    def _write_now(self, kind: str, rows: Sequence[dict[str, Any]]) -> str:
        records: list[SpilledRecord] = [(kind, dict(r)) for r in rows]
        leftovers = records
        if self._store_up:
            deadline = time.monotonic() + self.sync_timeout
            leftovers = self._store_or_leave(records, deadline, _call_in_thread)
        if not leftovers:
            return "store"
        try:
            self.spill.append(leftovers)
        except OSError as exc:
            raise StoreUnavailableError(
                f"store unreachable and spill log not writable: {exc}"
            ) from exc
        self._spilled(leftovers, time.monotonic())
        return "spill"

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._beat = time.monotonic()
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
        """Wait until every record queued so far is durable; ``True`` if it happened in time.

        Records offered after the call are not waited for, so a flush under steady traffic
        returns as soon as the earlier ones are written (or spilled; spilled ones are replayed
        into the store first when it answers)."""
        deadline = time.monotonic() + timeout
        target = self._offered
        while time.monotonic() < deadline:
            if self._handled >= target or (self._queue.empty() and self._idle.wait(0.01)):
                self._replay_while_up(deadline)
                return True
            time.sleep(0.005)
        return False

    def _replay_while_up(self, deadline: float) -> None:
        """A commit slower than its deadline spills its batch (durable, but not yet visible to
        a query): move such records in while the store answers, until ``deadline``, so that a
        caller that flushes and then reads (the monitor) sees them. Also waits out a replay
        the writer thread is running (it holds the files). In an outage it returns at once:
        the records are durable in the spill log and the writer replays them later."""
        while self.spill_pending and time.monotonic() < deadline:
            if not is_reachable(self.engine):
                return
            before = self.replayed_total
            with contextlib.suppress(Exception):
                self.replay_now()
            if self.spill_pending and self.replayed_total == before and not self._store_up:
                return  # the store refused the replay: an outage after all
            if self.spill_pending:
                time.sleep(0.05)  # the writer thread holds a file it is replaying

    def replay_now(self) -> int:
        """Replay spill files now if the store answers; returns the records replayed. Its
        caller waits, so each transaction may take ``sync_timeout`` (as in :meth:`write_now`),
        not the writer thread's ``commit_timeout``: a loaded store gets the time it needs."""
        if not is_reachable(self.engine):
            return 0
        before = self.replayed_total
        self._replay(None, _call_in_thread, timeout=self.sync_timeout)
        return self.replayed_total - before

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while True:
            self._beat = time.monotonic()
            self._collect_late()
            batch, stopping = self._take_batch(stopping)
            if batch:
                self._write_batch(batch)
                self._handled += len(batch)
            elif self._queue.empty():
                self._idle.set()
            try:
                self._maintain()
            except Exception:  # the spill stays for the next attempt
                log.exception("writer failed replaying the spill log")
                self._mark_down()
            if stopping and self._queue.empty():
                self._finish()
                self._caller.close()
                self._idle.set()
                return

    def _maintain(self) -> None:
        """Probe a store that is down; move spill files in, a little at a time. A store
        that was down counts as up again once a replay step went through."""
        if self._store_up and not (self._replay_wanted or self.spill.pending):
            return
        if time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + self.retry_interval
        if not self._store_up and not self._probe():
            self._mark_down()
            return
        result = self._replay(max(0.1, self.flush_interval / 2), self._caller)
        if result == "failed":
            return
        self._mark_up()
        if result == "done":
            self._replay_wanted = False
        else:  # budget spent: go on right after the next batch
            self._next_probe = 0.0

    def _probe(self, timeout: float | None = None) -> bool:
        if self._caller.busy:
            return False
        try:
            return bool(
                self._caller(
                    functools.partial(is_reachable, self.engine),
                    self.commit_timeout if timeout is None else timeout,
                )
            )
        except StoreTimeoutError:
            return False

    def _finish(self) -> None:
        """On a graceful stop: move what was spilled into the store if it answers now;
        otherwise the spill file stays for the next process to replay. No request waits on
        the writer any more, so each transaction gets ``sync_timeout`` (as a label write
        does), not the serving deadline: a store that is slow but up -- a loaded machine --
        takes the spill now instead of leaving it to the next start. A call given up on
        earlier gets the same time to return first (a hung one -- a silent network -- does
        not, and the spill file stays)."""
        self._collect_late()
        wanted = self._replay_wanted or self.spill.pending
        if wanted:  # a slow call given up on may still hold the store connection
            self._caller.wait_idle(self.sync_timeout)
        reachable = wanted and (self._store_up or self._probe(self.sync_timeout))
        if reachable and self._replay(None, self._caller, timeout=self.sync_timeout) == "done":
            self._mark_up()
        self.spill.release()

    def _take_batch(self, stopping: bool) -> tuple[list[_QueueItem], bool]:
        batch: list[_QueueItem] = []
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
            item = self._next_lingering(linger_until)
            if item is None:
                break
        return batch, stopping

    def _next_lingering(self, until: float) -> Any:
        """The next queued item, napping until ``until`` for one; ``None`` if none came.

        Naps rather than waits on the queue: a waiting reader is woken by every put, so each
        request would hand the GIL to this thread and back (under load, the writer's wake-ups
        were a tenth of the serving process's GIL time; README "Serving benchmark")."""
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                pass
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(remaining, _LINGER_NAP))

    def _write_batch(self, items: list[_QueueItem]) -> None:
        batch: list[SpilledRecord] = [(kind, row) for kind, row, _ in items]
        oldest = min(t for _, _, t in items)
        self._inflight_since = oldest
        kinds = ",".join(sorted({kind for kind, _ in batch}))
        try:
            with tracing.span(
                "driftline.writer.batch",
                {"driftline.write.kind": kinds, "driftline.rows": len(batch)},
            ) as span:
                try:
                    durable = self._commit_or_spill(batch, oldest)
                except Exception:  # a bug must not lose the batch nor kill the thread
                    log.exception("writer failed on a batch; spilling it")
                    self._spill_batch(batch, oldest)
                    durable = "spill"
                span.set_attribute("driftline.write.durable", durable)
        finally:
            self._inflight_since = None

    def _commit_or_spill(self, batch: list[SpilledRecord], oldest: float) -> str:
        """The batch into the store (refused records dead-lettered), else the spill log."""
        if not self._store_up:
            self._spill_batch(batch, oldest)
            return "spill"
        deadline = max(oldest + self.flush_interval, time.monotonic() + self._floor)
        leftovers = self._store_or_leave(batch, deadline, self._caller)
        if leftovers:
            self._spill_batch(leftovers, oldest)
        return "spill" if leftovers else "store"

    @property
    def _floor(self) -> float:
        """The least time one transaction is given before the writer stops waiting."""
        return self.commit_timeout / 2

    def _store_or_leave(
        self, records: list[SpilledRecord], deadline: float, call: CallFn
    ) -> list[SpilledRecord]:
        """Write ``records`` (dead-lettering refused ones) by ``deadline``; returns those that
        must be spilled instead: all that remain after a store error, or when time ran out
        (the store stays up then: the replay finishes the job)."""
        out = self._attempt(records, call, deadline)
        self._count_written(out.written, live=True)
        leftovers = out.unwritten
        dead = out.dead
        if out.failure is not None:
            log.warning(
                "store write failed (%s); spilling %d record(s)",
                out.failure,
                len(leftovers) + len(dead),
            )
            self._mark_down()
            leftovers, dead = leftovers + [r for r, _ in dead], []
        elif dead and deadline - time.monotonic() < self._floor:
            leftovers, dead = leftovers + [r for r, _ in dead], []  # isolated again on replay
        if dead:
            failure = self._dead_letter(dead, call, max(self._floor, deadline - time.monotonic()))
            if failure is not None:
                log.warning("dead letters not stored (%s); spilling them", failure)
                self._mark_down()
                leftovers = leftovers + [r for r, _ in dead]
        return leftovers

    # --- one attempt at a list of records: commit, or isolate the refused ones -------------

    def _transaction(self, records: Sequence[SpilledRecord]) -> None:
        with self.sessions.begin() as session:
            for kind, rows in _by_kind(records).items():
                inserter = self.inserters.get(kind)
                if inserter is None:
                    raise UnknownRecordKindError(f"unknown record kind {kind[:64]!r}")
                inserter(rows, session)

    def _attempt(
        self,
        records: list[SpilledRecord],
        call: CallFn,
        deadline: float | None = None,
        *,
        timeout: float | None = None,
    ) -> _Outcome:
        """Commit ``records``; on a record error, split them in halves (each its own
        transaction) until every refused record stands alone. A transaction may take
        ``commit_timeout`` (or ``timeout``); with a ``deadline``, the first one gets until then
        (at least half of ``commit_timeout``) and no other starts with less than that left.
        Stops at the first store error (``failure``) or at the deadline; what is not committed
        then is in ``unwritten``."""
        out = _Outcome()
        parts: deque[list[SpilledRecord]] = deque([records] if records else [])
        first = True
        while parts:
            limit = self.commit_timeout if timeout is None else timeout
            if deadline is not None:
                limit = deadline - time.monotonic()
                if first:
                    limit = max(limit, self._floor)
                elif limit < self._floor:
                    out.unwritten = list(itertools.chain.from_iterable(parts))
                    break
            first = False
            part = parts.popleft()
            try:
                call(functools.partial(self._transaction, part), limit)
            except Exception as exc:
                if isinstance(exc, StoreTimeoutError) and call is self._caller:
                    self._remember_late(part)
                if not is_record_error(exc):
                    out.failure = exc
                    out.unwritten = [*part, *itertools.chain.from_iterable(parts)]
                    break
                if len(part) == 1:
                    out.dead.append((part[0], error_text(exc)))
                    continue
                mid = len(part) // 2
                parts.appendleft(part[mid:])
                parts.appendleft(part[:mid])
            else:
                out.written.extend(part)
        return out

    def _dead_letter(
        self, dead: list[tuple[SpilledRecord, str]], call: CallFn, timeout: float
    ) -> BaseException | None:
        """Store refused records with their error; ``None`` when done (in the table, or in
        the dead-letter file if the table refuses them too), else the store error. Only
        records not dead-lettered before (by fingerprint) are counted."""
        now = time.time()
        rows = []
        for (kind, row), error in dead:
            record = _record_json(row)
            fingerprint = hashlib.sha256(f"{kind}\n{record}".encode()).hexdigest()
            rows.append(
                {
                    "ts": now,
                    "kind": _printable(kind)[:32],
                    "fingerprint": fingerprint,
                    "record": record,
                    "error": error,
                }
            )

        def insert() -> list[bool]:
            with self.sessions.begin() as session:
                return [insert_dead_letters([r], session=session) > 0 for r in rows]

        try:
            added: list[bool] = call(insert, timeout)
        except Exception as exc:
            if not is_record_error(exc):
                return exc
            log.error("store refused the dead letters too (%s); writing %s", exc, DEAD_LETTER_FILE)
            self._dead_letter_to_file(rows, error_text(exc))
            added = [True] * len(rows)
        counts: dict[str, int] = defaultdict(int)
        for ((kind, _), error), new in zip(dead, added, strict=True):
            if new:
                counts[kind] += 1
                log.error(
                    "store refused a %s record (%s); dead-lettered",
                    _printable(kind),
                    error.replace("\n", " "),  # one log line, whatever the driver says
                )
        for kind, n in counts.items():
            self.listener.dead_lettered(kind, n)
        self.dead_lettered_total += sum(counts.values())
        return None

    def _dead_letter_to_file(self, rows: list[dict[str, Any]], why: str) -> None:
        lines = "".join(
            json.dumps({**r, "store_error": why}, ensure_ascii=True) + "\n" for r in rows
        )
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        with self._dead_lock, open(self.dead_letter_file, "a", encoding="ascii") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def _remember_late(self, part: list[SpilledRecord]) -> None:
        current = self._caller.current
        if current is not None:
            self._late = (current, part)

    def _collect_late(self) -> None:
        """A transaction given up on that committed after all: count its records written
        (their spilled copy replays as a no-op)."""
        late = self._late
        if late is None or not late[0].done.is_set():
            return
        self._late = None
        if late[0].error is None:
            self._count_written(late[1], live=True)

    # --- accounting -------------------------------------------------------------------------------

    def _count_written(self, records: list[SpilledRecord], *, live: bool) -> None:
        if not records:
            return
        now = time.time()
        for kind, rows in _by_kind(records).items():
            if live:
                self.listener.written(kind, len(rows), _lag(rows, now))
            else:
                self.listener.replayed(kind, len(rows))
        if live:
            self.written_total += len(records)
        else:
            self.replayed_total += len(records)

    def _spill_batch(self, batch: list[SpilledRecord], oldest: float) -> None:
        while True:
            try:
                self.spill.append(batch)
                break
            except OSError as exc:  # disk full or gone: keep the batch, keep trying
                log.error("cannot write spill log (%s); retrying in 1s", exc)
                time.sleep(1.0)
        self._spilled(batch, oldest)

    def _spilled(self, batch: list[SpilledRecord], oldest: float) -> None:
        with self._state_lock:
            if self._spilled_since is None or oldest < self._spilled_since:
                self._spilled_since = oldest
            self._replay_wanted = True
        self.spilled_total += len(batch)
        for kind, rows in _by_kind(batch).items():
            self.listener.spilled(kind, len(rows))

    def _mark_down(self) -> None:
        with self._state_lock:
            if self._store_up:
                self._store_up = False
                self.listener.store_state(False)
            self._next_probe = time.monotonic() + self.retry_interval

    def _mark_up(self) -> None:
        with self._state_lock:
            if not self._store_up:
                self._store_up = True
                self.listener.store_state(True)
                log.info("store reachable again; replaying the spill log")

    # --- replay -------------------------------------------------------------------------------

    def _replay(
        self, budget: float | None, call: CallFn, *, timeout: float | None = None
    ) -> Literal["done", "more", "failed"]:
        """Move every claimable spill file into the store, oldest first, for about ``budget``
        seconds (``None``: until done): ``"done"`` when no claimable file is left, ``"more"``
        when the budget ran out. On a store error (``"failed"``) the store is marked down and
        the file stays (what was committed of it is inserted again, idempotently, later).
        ``timeout`` bounds each transaction (default ``commit_timeout``)."""
        timeout = self.commit_timeout if timeout is None else timeout
        self.spill.release()
        started = time.monotonic()
        files = claim_spill_files(self.spill_dir)
        try:
            for path, records in files:
                with self._state_lock:
                    if self._spilled_since is None:
                        self._spilled_since = started
                done = self._replay_cursor.get(path, 0)
                while done < len(records):
                    if budget is not None and time.monotonic() - started > budget:
                        return "more"
                    chunk = records[done : done + self.batch_size]
                    out = self._attempt(chunk, call, timeout=timeout)
                    self._count_written(out.written, live=False)
                    failure = out.failure
                    if failure is None and out.dead:
                        failure = self._dead_letter(out.dead, call, timeout)
                        self.replayed_total += len(out.dead) if failure is None else 0
                    if failure is not None:
                        log.warning("replay of %s failed (%s); will retry", path.name, failure)
                        self._mark_down()
                        return "failed"
                    done += len(chunk)
                    self._replay_cursor[path] = done
                path.unlink()
                self._replay_cursor.pop(path, None)
        finally:
            files.close()
        with self._state_lock:
            if not self.spill.pending:
                self._spilled_since = None
        return "done"
