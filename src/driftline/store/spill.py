"""The spill log: an append-only, fsync'd JSON-lines file for records the store could not take.

Each writer owns one file (``<dir>/spill-<uuid>.jsonl``) under an exclusive ``flock``. When the
store is back, any writer replays every file it can lock: its own, and those of processes that
died. A file is unlinked only after its records are committed, and replay inserts are
idempotent, so a crash at any point neither loses nor duplicates records. A torn last line
(a crash mid-append) is skipped: it was never acknowledged as durable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["SpillLog", "SpilledRecord", "claim_spill_files", "read_spill_file"]

log = logging.getLogger(__name__)

SpilledRecord = tuple[str, dict[str, Any]]
PATTERN = "spill-*.jsonl"


class SpillLog:
    """This process's spill file. Thread-safe; every append is fsync'd before it returns."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self.path: Path | None = None
        self.records = 0

    def append(self, records: list[SpilledRecord]) -> None:
        if not records:
            return
        lines = "".join(
            json.dumps({"kind": kind, "row": row}, separators=(",", ":"), default=str) + "\n"
            for kind, row in records
        )
        with self._lock:
            handle = self._open()
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
            self.records += len(records)

    def _open(self) -> IO[str]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.path = self.directory / f"spill-{uuid.uuid4().hex}.jsonl"
            handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file = handle
        return self._file

    def release(self) -> None:
        """Close (and unlock) the current file so it can be claimed and replayed."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                self.path = None
                self.records = 0

    @property
    def pending(self) -> int:
        """Records appended to the current file and not replayed yet."""
        return self.records


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[str] | None]:
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if not path.exists():  # replayed and unlinked by another process meanwhile
            yield None
            return
        yield handle
    finally:
        handle.close()


def read_spill_file(handle: IO[str]) -> list[SpilledRecord]:
    records: list[SpilledRecord] = []
    for number, line in enumerate(handle, start=1):
        if not line.endswith("\n"):
            log.warning("spill file: skipping torn last line %d (never acknowledged)", number)
            break
        try:
            item = json.loads(line)
            records.append((str(item["kind"]), dict(item["row"])))
        except (ValueError, KeyError, TypeError):
            log.warning("spill file: skipping unreadable line %d", number)
    return records


def claim_spill_files(
    directory: Path,
) -> Generator[tuple[Path, list[SpilledRecord]], None, None]:
    """Yield ``(path, records)`` for every spill file no live writer holds.

    The file stays locked while the caller handles the records; the caller unlinks it once
    they are durable elsewhere (``path.unlink()``) before asking for the next one.
    """
    if not directory.exists():
        return
    for path in sorted(directory.glob(PATTERN)):
        with _locked(path) as handle:
            if handle is None:
                continue
            yield path, read_spill_file(handle)
