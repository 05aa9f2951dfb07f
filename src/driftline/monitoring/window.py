"""Live traffic summarized in small time buckets that merge by addition.

Each serving worker keeps, per (bucket start, model version, variant): the feature profile and
the output profile on the reference's bins, the CBPE sketch of calibrated probabilities, and
request/error/rejection counts with a latency histogram (and, for shadow traffic, how often the
challenger agreed with the champion). The worker writes its open buckets to the store as
cumulative snapshots every few seconds; the monitor merges every worker's rows over any window,
so a check costs O(bins × buckets), never O(rows). Bucket profiles carry no reservoir sample
(:data:`BUCKET_SAMPLE_SIZE`); what the doubly robust accuracy estimate reads instead is one
bounded uniform sample of whole rows per bucket (:class:`~driftline.monitoring.sample.RowSample`:
encoded features and the calibrated confidence, at most ``sample_rows`` rows, merged across
buckets and workers into a uniform sample of the window).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.errors import DataError
from driftline.models.base import Predictions
from driftline.models.bundle import ModelBundle
from driftline.monitoring.reference import MonitoringReference, reference_for
from driftline.monitoring.sample import (
    CONFIDENCE_COLUMN,
    RowSample,
    encode_columns,
    merge_samples,
)
from driftline.performance import PerformanceSketch
from driftline.profiles import DatasetProfile, merge_payloads, output_columns

__all__ = [
    "BUCKET_SAMPLE_SIZE",
    "LATENCY_EDGES_MS",
    "WINDOW_SAMPLE_ROWS",
    "BucketState",
    "WindowRecorder",
    "WindowSummary",
    "summarize",
]

#: Reservoir capacity of the numeric features of a bucket profile: none. Nothing that reads
#: buckets uses a reservoir sample -- the drift decision works on bin counts and centroids,
#: the quality checks on counts, missing and out-of-range tallies and extremes, reports,
#: charts and the dashboard on bin and class counts -- while the 256 values and keys per
#: numeric feature were three quarters of a stored bucket's bytes and a quarter of the time
#: of a check over an hour of one-minute buckets. The reference profile keeps its sample.
#: Buckets stored with a sample (before this) still merge with these; the merged sample is
#: then theirs alone, which nothing reads either.
BUCKET_SAMPLE_SIZE = 0

#: Default capacity of a bucket's row sample (``DRIFTLINE_MONITOR_SAMPLE_ROWS``), which is also
#: the size of the window's merged sample: a bottom-k merge stays uniform only at the smallest
#: capacity of its parts. The doubly robust estimate's window side (density ratio, mean of the
#: outcome model) is fitted on these rows; see the README's Monitoring section for the
#: measured accuracy and storage at this size.
WINDOW_SAMPLE_ROWS = 2_000

#: Upper edges (ms) of the latency histogram kept per bucket; p95 across workers comes from it.
LATENCY_EDGES_MS: tuple[float, ...] = (
    0.5,
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    20,
    30,
    50,
    75,
    100,
    150,
    250,
    500,
    1000,
    2500,
    5000,
)


def _latency_bin(ms: float) -> int:
    for i, edge in enumerate(LATENCY_EDGES_MS):
        if ms <= edge:
            return i
    return len(LATENCY_EDGES_MS)


def quantile_from_histogram(counts: Sequence[int], q: float) -> float | None:
    """A quantile (ms) from the latency histogram: the upper edge of the bin reaching ``q``.

    >>> quantile_from_histogram([0, 5, 90, 5] + [0] * 16, 0.95)
    2.0
    """
    total = sum(counts)
    if total == 0:
        return None
    target = q * total
    running = 0
    for i, c in enumerate(counts):
        running += c
        if running >= target:
            return float(LATENCY_EDGES_MS[i]) if i < len(LATENCY_EDGES_MS) else math.inf
    return math.inf


@dataclass
class BucketState:
    """One bucket of one worker."""

    features: DatasetProfile | None = None
    outputs: DatasetProfile | None = None
    sketch: PerformanceSketch | None = None
    #: Uniform sample of the bucket's rows (encoded features, calibrated confidence).
    sample: RowSample | None = None
    requests: int = 0
    errors: int = 0
    rejected: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))
    agree: int = 0
    compared: int = 0
    dirty: bool = True
    #: > 0 when the bucket had already been written and closed: its rows go under a separate
    #: key, so the store's rows still add up (a snapshot never replaces a closed one).
    generation: int = 0

    @property
    def n_rows(self) -> int:
        return self.features.n_rows if self.features is not None else 0

    def to_payload(self) -> dict[str, Any]:
        return {
            "features": _profile_dict(self.features),
            "outputs": _profile_dict(self.outputs),
            "sketch": self.sketch.to_dict() if self.sketch is not None else None,
            "sample": self.sample.to_dict() if self.sample is not None else None,
            "requests": self.requests,
            "errors": self.errors,
            "rejected": self.rejected,
            "latency": list(self.latency),
            "agree": self.agree,
            "compared": self.compared,
        }


ORDER_KEY = "feature_order"


def _profile_dict(profile: DatasetProfile | None) -> dict[str, Any] | None:
    """A profile's dict plus its feature order: PostgreSQL's JSONB does not keep key order."""
    if profile is None:
        return None
    data = profile.to_dict()
    data[ORDER_KEY] = list(profile.features)
    return data


def _profile_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A payload's profile dict with its feature order restored."""
    order = data.get(ORDER_KEY)
    clean = {k: v for k, v in data.items() if k != ORDER_KEY}
    features = clean.get("features")
    if order and isinstance(features, Mapping):
        clean["features"] = {name: features[name] for name in order}
    return clean


def profile_from_payload(data: Mapping[str, Any]) -> DatasetProfile:
    """Inverse of the payload form: the feature order restored before parsing."""
    return DatasetProfile.from_dict(_profile_data(data))


@dataclass
class _Pending:
    bundle: ModelBundle
    variant: str
    ts: float
    records: list[Mapping[str, Any]] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    proba: list[np.ndarray] = field(default_factory=list)


class WindowRecorder:
    """The serving side: profiles every batch into the current bucket (thread-safe).

    :meth:`observe` only queues a model call's rows (microseconds, on the model thread);
    :meth:`process_pending` profiles everything queued in one vectorized pass per bucket — a
    background thread calls it a few times a second, so profiling costs the hot path nothing
    and its fixed per-call cost is paid once per pass, not once per request.
    """

    #: Rows queued before :meth:`observe` profiles them itself (bounds memory under overload).
    MAX_PENDING_ROWS = 50_000

    def __init__(
        self,
        *,
        worker_id: str,
        bucket_seconds: float = 60.0,
        sample_rows: int = WINDOW_SAMPLE_ROWS,
    ) -> None:
        self.worker_id = worker_id
        self.bucket_seconds = bucket_seconds
        #: Capacity of each bucket's row sample (0: keep none; the monitor then reports CBPE).
        self.sample_rows = max(0, int(sample_rows))
        # Seeded by the OS, never by a fixed seed: two workers drawing the same keys would
        # sample the same positions of their batches, and the merged sample would not be
        # uniform.
        self._rng = np.random.default_rng()
        self._lock = threading.Lock()
        self._process_lock = threading.Lock()
        self._buckets: dict[tuple[float, int, str], BucketState] = {}
        self._references: dict[int, MonitoringReference] = {}
        self._pending: dict[tuple[float, int, str], _Pending] = {}
        self._pending_rows = 0
        self._closed: dict[tuple[float, int, str], int] = {}

    def bucket_of(self, ts: float) -> float:
        return math.floor(ts / self.bucket_seconds) * self.bucket_seconds

    def reference(self, bundle: ModelBundle) -> MonitoringReference | None:
        version = bundle.version or 0
        ref = self._references.get(version)
        if ref is None:
            try:
                ref = reference_for(bundle)
            except Exception:  # a bundle without reference data: counts only
                return None
            self._references[version] = ref
        return ref

    def _state(
        self, ts: float, version: int, variant: str, ref: MonitoringReference | None = None
    ) -> BucketState:
        key = (self.bucket_of(ts), version, variant)
        state = self._buckets.get(key)
        if state is None:
            state = self._buckets[key] = BucketState(generation=self._closed.get(key, 0))
        if ref is not None and state.features is None:
            # Profiles start with the first model call of the bucket (counts may come first).
            size = BUCKET_SAMPLE_SIZE
            state.features = ref.features.empty_like(sample_size=size)
            state.outputs = (
                ref.outputs.empty_like(sample_size=size) if ref.outputs is not None else None
            )
            if ref.calibrator is not None:
                state.sketch = ref.calibrator.empty_sketch()
                if ref.labelled is not None and self.sample_rows > 0:
                    state.sample = RowSample.empty(
                        (*ref.labelled.columns, CONFIDENCE_COLUMN), self.sample_rows
                    )
        state.dirty = True
        return state

    # --- the hot path (model thread and event loop) -----------------------------------------

    def observe(
        self,
        bundle: ModelBundle,
        records: Sequence[Mapping[str, Any]],
        predictions: Predictions,
        *,
        variant: str = "champion",
        now: float | None = None,
    ) -> None:
        """Queue one model call's rows and outputs for profiling."""
        now = time.time() if now is None else now
        key = (self.bucket_of(now), bundle.version or 0, variant)
        swapped: _Pending | None = None
        with self._lock:
            pending = self._pending.get(key)
            if pending is None or pending.bundle is not bundle:
                if pending is not None:  # the model object changed within the bucket
                    self._pending_rows -= len(pending.records)
                    swapped = pending
                pending = self._pending[key] = _Pending(bundle, variant, now)
            pending.records.extend(records)
            pending.labels.extend(predictions.labels)
            pending.proba.append(predictions.proba)
            self._pending_rows += len(records)
            overloaded = self._pending_rows > self.MAX_PENDING_ROWS
        if swapped is not None:
            # Profiled outside ``_lock`` (``_profile`` takes it), in the same lock order as
            # ``process_pending``: the same version can arrive as two bundle objects, e.g.
            # the canary's and the reloaded champion's right after a promotion.
            with self._process_lock:
                self._profile(key, swapped)
        if overloaded:
            self.process_pending()

    def process_pending(self) -> int:
        """Profile every queued row; returns how many."""
        with self._process_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._pending_rows = 0
            done = 0
            for key, item in pending.items():
                self._profile(key, item)
                done += len(item.records)
            return done

    def _profile(self, key: tuple[float, int, str], item: _Pending) -> None:
        ref = self.reference(item.bundle)
        if ref is None or not item.records:
            return
        columns = {
            name: np.array([r.get(name) for r in item.records], dtype=object)
            for name in item.bundle.schema.names
        }
        proba = np.vstack(item.proba)
        outputs = output_columns(item.labels, proba)
        sketch = None
        if ref.calibrator is not None:
            try:
                sketch = ref.calibrator.sketch(proba)
            except Exception:  # e.g. a model whose classes changed: counts only
                sketch = None
        with self._lock:
            state = self._state(key[0], key[1], key[2], ref)
            sample = state.sample if sketch is not None else None
        calibrator = ref.calibrator
        schema = item.bundle.schema

        def encode(positions: np.ndarray) -> np.ndarray:
            rows = proba[positions]
            assert calibrator is not None  # a sample exists only with a calibrator
            calibrated = calibrator.transform(rows)
            confidence = calibrated[np.arange(len(positions)), rows.argmax(axis=1)]
            return np.column_stack([encode_columns(schema, columns, positions), confidence])

        batch = None
        if sample is not None:
            # Keys and the encoding of the rows that can enter, outside the lock the model
            # thread takes: only this method (under ``_process_lock``) changes samples.
            try:
                batch = sample.draw(len(proba), self._rng, encode)
            except DataError:  # e.g. the schema's columns changed: no sample for this batch
                batch = None
        with self._lock:
            current = self._state(key[0], key[1], key[2], ref)
            if current is not state:
                # A drain closed the bucket meanwhile (rare): draw again against the new
                # state's sample, whose threshold the batch above did not see.
                state = current
                batch = None
                if state.sample is not None and sketch is not None:
                    try:
                        batch = state.sample.draw(len(proba), self._rng, encode)
                    except DataError:
                        batch = None
            if state.features is not None:
                state.features.add_columns(columns)
            if state.outputs is not None:
                state.outputs.add_columns(outputs)
            if sketch is not None and state.sketch is not None:
                state.sketch = state.sketch.merge(sketch)
            if batch is not None and state.sample is not None:
                state.sample = merge_samples([state.sample, batch])
            elif sketch is not None:
                state.sample = None  # a sample that missed rows is not uniform over the bucket

    def observe_requests(
        self,
        version: int,
        latencies_ms: Iterable[float],
        *,
        variant: str = "champion",
        errors: int = 0,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        with self._lock:
            state = self._state(now, version, variant)
            for ms in latencies_ms:
                state.requests += 1
                state.latency[_latency_bin(ms)] += 1
            state.requests += errors
            state.errors += errors

    def observe_rejected(self, version: int, n: int = 1, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._state(now, version, "champion").rejected += n

    # --- flushing --------------------------------------------------------------------------------

    def drain(self, *, now: float | None = None, everything: bool = False) -> list[dict[str, Any]]:
        """Snapshots of the buckets that changed since the last drain, as store rows.

        Buckets that have closed are forgotten after their last snapshot (``everything``
        forgets all of them, on shutdown).
        """
        now = time.time() if now is None else now
        self.process_pending()
        current = self.bucket_of(now)
        rows: list[dict[str, Any]] = []
        with self._lock:
            for key, state in list(self._buckets.items()):
                start, version, variant = key
                if state.dirty:
                    worker = self.worker_id
                    if state.generation:
                        worker = f"{worker}~{state.generation}"
                    rows.append(
                        {
                            "worker_id": worker,
                            "bucket_start": start,
                            "model_version": version,
                            "variant": variant,
                            "n_rows": max(state.n_rows, state.requests),
                            "payload": {**state.to_payload(), "seconds": self.bucket_seconds},
                            "updated_ts": now,
                        }
                    )
                    state.dirty = False
                if everything or start < current:
                    del self._buckets[key]
                    self._closed[key] = state.generation + 1
            if len(self._closed) > 1_000:  # only recent closes matter
                for key in sorted(self._closed)[:-500]:
                    del self._closed[key]
        return rows


@dataclass
class WindowSummary:
    """Every worker's buckets of one version and variant over a window, merged."""

    features: DatasetProfile | None
    outputs: DatasetProfile | None
    sketch: PerformanceSketch | None
    #: Uniform sample of the window's rows (None when no bucket kept one).
    sample: RowSample | None
    #: Rows of the CBPE sketch that no sample saw (buckets written without one): when > 0
    #: the sample is not uniform over the window.
    unsampled_rows: int
    requests: int
    errors: int
    rejected: int
    latency: list[int]
    agree: int
    compared: int
    buckets: int
    start: float | None
    end: float | None

    @property
    def rows(self) -> int:
        return self.features.n_rows if self.features is not None else 0

    @property
    def p95_latency_ms(self) -> float | None:
        return quantile_from_histogram(self.latency, 0.95)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def summarize(
    payloads: Iterable[Mapping[str, Any]],
    *,
    starts: Iterable[float] = (),
    bucket_seconds: float = 60.0,
) -> WindowSummary:
    """Merge bucket payloads (from :func:`driftline.store.queries.buckets`).

    Profiles are merged straight from their stored form (:func:`merge_payloads`), without
    building a profile object per bucket.
    """
    features: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    sketch: PerformanceSketch | None = None
    samples: list[RowSample] = []
    unsampled = 0
    requests = errors = rejected = agree = compared = count = 0
    latency = [0] * (len(LATENCY_EDGES_MS) + 1)
    for payload in payloads:
        count += 1
        if payload.get("features"):
            features.append(_profile_data(payload["features"]))
        if payload.get("outputs"):
            outputs.append(_profile_data(payload["outputs"]))
        if payload.get("sketch"):
            part = PerformanceSketch.from_dict(payload["sketch"])
            sketch = part if sketch is None else sketch.merge(part)
            if payload.get("sample"):
                samples.append(RowSample.from_dict(payload["sample"]))
            else:
                unsampled += part.n
        requests += int(payload.get("requests", 0))
        errors += int(payload.get("errors", 0))
        rejected += int(payload.get("rejected", 0))
        agree += int(payload.get("agree", 0))
        compared += int(payload.get("compared", 0))
        for i, c in enumerate(payload.get("latency", [])[: len(latency)]):
            latency[i] += int(c)
    start_list = list(starts)
    merged_sample = None
    if samples:
        try:
            merged_sample = merge_samples(samples)
        except DataError:  # buckets of different encodings (a changed schema): no sample
            merged_sample, unsampled = None, sketch.n if sketch is not None else 0
    return WindowSummary(
        features=merge_payloads(features) if features else None,
        outputs=merge_payloads(outputs) if outputs else None,
        sketch=sketch,
        sample=merged_sample,
        unsampled_rows=unsampled,
        requests=requests,
        errors=errors,
        rejected=rejected,
        latency=latency,
        agree=agree,
        compared=compared,
        buckets=count,
        start=min(start_list) if start_list else None,
        end=max(start_list) + bucket_seconds if start_list else None,
    )
