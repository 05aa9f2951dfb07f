"""Tests marked ``alone`` run while no other test runs, also on pytest-xdist's workers.

A test that judges this machine's own CPU load (the host watcher catching a generated load,
``tests/anomaly/test_watch_load.py``) cannot see anything while sibling workers keep both cores
busy: it would skip every time. The suite therefore holds every other test back until the
``alone`` tests are done, with two files in a folder all workers share:

* ``alone.lock`` -- an ``alone`` test holds it exclusively while it runs; every other test takes
  it shared for a moment before its fixtures are set up, so it waits while an ``alone`` test
  runs;
* ``alone.started`` and one ``*.finished`` file per ``alone`` test -- other tests first wait
  (bounded) for an ``alone`` test to have started, so that none of them slips in before it;
  once every ``alone`` test has finished, nobody waits.

The ``alone`` tests are ordered first (``tests/conftest.py``), so they start at once on some
worker and the others wait seconds, not minutes. Every wait is bounded: a test that cannot get
the turn in time runs anyway (an ``alone`` test then sees a busy machine and says so).
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path

import pytest

MARK = "alone"
#: How long a test waits for an ``alone`` test to start, then to finish, before it runs anyway.
START_PATIENCE = 180.0
RUN_PATIENCE = 600.0

_FOLDER_KEY = "driftline_alone_dir"
_held = pytest.StashKey[int]()


def shared_folder(config: pytest.Config) -> Path | None:
    """The folder the workers share (``None`` outside xdist: one process needs no gate)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or _FOLDER_KEY not in workerinput:
        return None
    return Path(workerinput[_FOLDER_KEY])


def configure_node(node: object, folder: Path) -> None:
    """Controller side: tell a new worker where the shared folder is."""
    node.workerinput[_FOLDER_KEY] = str(folder)  # type: ignore[attr-defined]


def _wait_for(path: Path, patience: float) -> bool:
    deadline = time.monotonic() + patience
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _lock(path: Path, mode: int, patience: float) -> int | None:
    """An open descriptor holding ``mode`` on ``path``, or ``None`` after ``patience`` s."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.1)


def _all_finished(folder: Path, alone_tests: int) -> bool:
    return len(list(folder.glob("*.finished"))) >= alone_tests


def before_setup(item: pytest.Item, alone_tests: int) -> None:
    """Called before ``item``'s fixtures are set up; ``alone_tests``: how many were collected."""
    folder = shared_folder(item.config)
    if folder is None or alone_tests == 0 or _all_finished(folder, alone_tests):
        return
    if item.get_closest_marker(MARK) is not None:
        fd = _lock(folder / "alone.lock", fcntl.LOCK_EX, RUN_PATIENCE)
        if fd is not None:
            item.stash[_held] = fd
        (folder / "alone.started").touch()
        return
    if not _wait_for(folder / "alone.started", START_PATIENCE):
        return
    fd = _lock(folder / "alone.lock", fcntl.LOCK_SH, RUN_PATIENCE)  # waits while one runs
    if fd is not None:
        os.close(fd)  # releases the shared lock: the turn has passed


def after_teardown(item: pytest.Item) -> None:
    """Called after ``item``'s teardown: an ``alone`` test marks itself finished and lets the
    others go."""
    folder = shared_folder(item.config)
    if folder is None or item.get_closest_marker(MARK) is None:
        return
    (folder / f"{uuid.uuid4().hex}.finished").touch()
    fd = item.stash.get(_held, None)
    if fd is not None:
        os.close(fd)  # releases the exclusive lock
