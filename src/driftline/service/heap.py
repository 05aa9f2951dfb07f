"""Garbage collection tuned for a serving worker.

A worker's heap is mostly long-lived: the model, its reference data, the libraries (about
380,000 tracked objects for the demo's logistic regression). CPython's full collection walks
all of them; under load, one took over a second of the event loop's time (measured with
``gc.callbacks`` while ``wrk`` drove ``/predict``: README "Serving benchmark"), which was the
long tail of ``/predict``. So, once the model is loaded, the worker moves what exists into
the permanent generation (:func:`gc.freeze`, as CPython's documentation suggests for
long-running servers): later collections only walk objects created since. Young collections
are also made rarer (``DRIFTLINE_GC_GEN0_THRESHOLD``), since each request allocates a few
hundred short-lived containers that reference counting frees anyway.

After a model reload the old model may hold reference cycles that only a full collection
frees: :func:`refreeze` unfreezes, collects once and freezes again (a one-off pause at a
reload, never on the request path's steady state).
"""

from __future__ import annotations

import gc
import logging
import time

__all__ = ["freeze", "refreeze", "set_gen0_threshold"]

log = logging.getLogger(__name__)


def set_gen0_threshold(threshold: int) -> None:
    """Allocations (minus deallocations) of tracked objects between two young collections."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, gen1, gen2)


def freeze() -> int:
    """Move every tracked object into the permanent generation; returns how many."""
    gc.freeze()
    return gc.get_freeze_count()


def refreeze() -> int:
    """Collect what the frozen objects left behind (an old model), then freeze again."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    count = freeze()
    log.debug("heap refrozen: %d objects in %.0f ms", count, (time.perf_counter() - started) * 1e3)
    return count
