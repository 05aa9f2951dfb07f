"""The stream consumer: feature events in, predictions out, each one logged exactly once.

Long on purpose (600+ lines): one consumer loop; its six steps share the loop's state.

For every batch, in this order:

1. take stale entries of dead consumers (every ``claim_every_seconds``), else read new events
   (at most ``batch_size``, blocking up to ``block_ms``);
2. check every event against the champion's schema; invalid or malformed ones go to the
   dead-letter stream with their errors and are acked (they would fail again);
3. predict the valid ones in one model call, profile them into the live window buckets the
   monitor reads (as the HTTP path does) and call the batch listeners;
4. make the label rows (events with a ``label`` and no ``features``) and the prediction rows
   durable (``StoreWriter.write_now``: the store, or the fsync'd spill log while it is down);
5. publish the predictions to the output stream;
6. ack them.

A crash anywhere before 6 leaves the events pending; they are delivered again and predicted
again under the same request id (the event's ``request_id`` field, else the source's
:meth:`~driftline.streams.source.StreamSource.request_id`: ``<input stream>:<event id>`` for
Redis, ``<topic>/<partition>/<offset>`` for Kafka). The store's inserts are idempotent by
request id, so it keeps one row per event; the output stream may carry a second entry
(at-least-once); listeners and counters (and profiles) may see a redelivered event twice.

Monitoring: with a :class:`~driftline.monitoring.window.WindowRecorder`, every model call is
profiled, latencies, model errors and schema violations are counted, and the buckets are
written through the writer (kind ``bucket``) every ``flush_seconds`` and when :meth:`run`
returns, so ``driftline check`` and the service's monitor see stream traffic like HTTP traffic.

Backpressure: the next batch is read only after the previous one is acked, so at most one
batch is in memory and the backlog waits in the broker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from driftline import tracing
from driftline.errors import ConfigurationError, StoreUnavailableError
from driftline.models.base import Predictions
from driftline.models.bundle import ModelBundle
from driftline.monitoring.window import WindowRecorder
from driftline.registry import CHALLENGER, CHAMPION, Registry
from driftline.schema import label_text
from driftline.service.batcher import BatchListener
from driftline.service.metrics import LATENCY_BUCKETS, ServiceMetrics
from driftline.store.writer import StoreWriter
from driftline.streams.source import (
    StreamError,
    StreamEvent,
    StreamSource,
    decode_event,
    decode_label,
    is_label_event,
)

__all__ = ["ConsumerStats", "StreamConsumer", "StreamMetrics"]

log = logging.getLogger(__name__)

ENDPOINT = "stream"


@dataclass
class ConsumerStats:
    """What one :meth:`StreamConsumer.run` did."""

    events: int = 0
    """Events acked: predicted, dead-lettered, or trimmed from the stream before we got them."""
    predicted: int = 0
    labels: int = 0
    """Label events written to the store."""
    dead_lettered: int = 0
    claimed: int = 0
    """Events taken over from consumers that left them pending too long."""
    batches: int = 0
    failed_batches: int = 0
    """Batches abandoned (broker or store failure) and delivered again later."""
    spilled: int = 0
    """Predictions made durable in the spill log because the store was down."""


class StreamMetrics:
    """The stream consumer's own metrics, on the registry of a :class:`ServiceMetrics`.

    One instance per registry (:meth:`for_registry`), so several consumers in one process can
    share a :class:`ServiceMetrics`.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "driftline_stream_events_total",
            "Stream events acked, by outcome (predicted, label, dead_letter, trimmed).",
            ["outcome"],
            registry=registry,
        )
        self.claimed = Counter(
            "driftline_stream_claimed_total",
            "Pending stream events taken over from a consumer that stopped acking them.",
            registry=registry,
        )
        self.failures = Counter(
            "driftline_stream_batch_failures_total",
            "Stream batches abandoned for redelivery, by reason (stream, store).",
            ["reason"],
            registry=registry,
        )
        self.lag = Gauge(
            "driftline_stream_lag_events",
            "Events of a stream partition this consumer owns that the group has not acked yet.",
            ["stream", "partition"],
            registry=registry,
        )
        self.batch_duration = Histogram(
            "driftline_stream_batch_duration_seconds",
            "Time from reading a stream batch to acking it.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> StreamMetrics:
        with _METRICS_LOCK:
            found = _METRICS.get(registry)
            if found is None:
                found = _METRICS[registry] = cls(registry)
            return found


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, StreamMetrics] = weakref.WeakKeyDictionary()
_METRICS_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Outcome:
    """One row's model answer, or why the model failed on it."""

    label: Any = None
    probabilities: dict[str, float] | None = None
    confidence: float = 0.0
    error: str | None = None


class StreamConsumer:
    """Predicts feature events from a :class:`StreamSource` with the champion.

    Parameters
    ----------
    source
        Where events come from and predictions go.
    registry
        Serves the champion; its alias is polled every ``reload_poll_seconds``.
    writer
        Makes prediction rows durable (started by the caller, so it replays spill files).
    metrics
        The service metrics to count into (a fresh set by default).
    listeners
        Called after every successful model call with the bundle, the records and the
        predictions.
    recorder
        Profiles the traffic into live window buckets for drift monitoring (as an API worker
        does); its buckets go to the store through ``writer``, which must accept the kind
        ``bucket``. ``None`` turns monitoring off.
    flush_seconds
        How often the recorder's changed buckets are written.
    batch_size
        Most events per batch (and per model call).
    block_ms
        Longest wait for new events in one read; also bounds how long a stop request waits.
    reload_poll_seconds
        How often the champion alias is checked.
    claim_every_seconds
        How often to look for stale entries of dead consumers.
    lag_every_seconds
        How often the source's lag per partition is exported (``driftline_stream_lag_events``).
    model_name
        Written into every prediction row.
    compiled_preprocessing
        Use the compiled NumPy preprocessing path of models that have one.
    retry_seconds
        Pause after a failed batch before it is delivered again.
    """

    def __init__(
        self,
        source: StreamSource,
        registry: Registry,
        writer: StoreWriter,
        *,
        metrics: ServiceMetrics | None = None,
        listeners: Sequence[BatchListener] = (),
        recorder: WindowRecorder | None = None,
        flush_seconds: float = 10.0,
        batch_size: int = 100,
        block_ms: int = 1_000,
        reload_poll_seconds: float = 5.0,
        claim_every_seconds: float = 1.0,
        lag_every_seconds: float = 1.0,
        model_name: str = "driftline",
        compiled_preprocessing: bool = True,
        retry_seconds: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if block_ms < 0:
            raise ConfigurationError(f"block_ms must be >= 0, got {block_ms}")
        if reload_poll_seconds <= 0:
            raise ConfigurationError(f"reload_poll_seconds must be > 0, got {reload_poll_seconds}")
        if claim_every_seconds <= 0:
            raise ConfigurationError(f"claim_every_seconds must be > 0, got {claim_every_seconds}")
        if flush_seconds <= 0:
            raise ConfigurationError(f"flush_seconds must be > 0, got {flush_seconds}")
        if lag_every_seconds <= 0:
            raise ConfigurationError(f"lag_every_seconds must be > 0, got {lag_every_seconds}")
        self.source = source
        self.registry = registry
        self.writer = writer
        self.metrics = metrics or ServiceMetrics()
        self.stream_metrics = StreamMetrics.for_registry(self.metrics.registry)
        self.listeners = list(listeners)
        self.recorder = recorder
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.reload_poll_seconds = reload_poll_seconds
        self.claim_every_seconds = claim_every_seconds
        self.lag_every_seconds = lag_every_seconds
        self.model_name = model_name
        self.compiled_preprocessing = compiled_preprocessing
        self.retry_seconds = retry_seconds
        self.champion: ModelBundle | None = None
        self.stats = ConsumerStats()
        #: Fields refused by validation since start (a data-quality signal for the monitor).
        self.schema_violations = 0
        self._stop = threading.Event()
        self._next_poll = 0.0
        self._next_claim = 0.0
        self._next_lag = 0.0
        self._lag_series: set[tuple[str, str]] = set()
        self._next_flush = time.monotonic() + flush_seconds

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        source: StreamSource,
        registry: Registry,
        writer: StoreWriter,
        **options: Any,
    ) -> StreamConsumer:
        """A consumer configured from :class:`~driftline.config.Settings` (``options`` win)."""
        defaults: dict[str, Any] = {
            "batch_size": settings.stream_batch_size,
            "reload_poll_seconds": settings.reload_poll_seconds,
            # Look for stale entries a few times per idle period, at most once a second.
            "claim_every_seconds": min(1.0, settings.stream_claim_idle_ms / 4000.0),
            "model_name": settings.model_name,
            "compiled_preprocessing": settings.compiled_preprocessing,
            "flush_seconds": settings.monitor_flush_seconds,
        }
        return cls(source, registry, writer, **{**defaults, **options})

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return once the batch in hand is acked (safe from signal handlers
        and other threads)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, max_events: int | None = None) -> ConsumerStats:
        """Consume until :meth:`stop` is called or ``max_events`` events were acked."""
        if max_events is not None and max_events < 0:
            raise ConfigurationError(f"max_events must be >= 0, got {max_events}")
        target = None if max_events is None else self.stats.events + max_events
        waiting_logged = False
        try:
            while not self._stop.is_set():
                if target is not None and self.stats.events >= target:
                    break
                self._poll_model()
                if self.champion is None:
                    if not waiting_logged:
                        log.warning("no champion model yet; waiting before reading events")
                        waiting_logged = True
                    self._stop.wait(self.reload_poll_seconds)
                    continue
                limit = self.batch_size
                if target is not None:
                    limit = min(limit, target - self.stats.events)
                self.step(limit)
                now = time.monotonic()
                if now >= self._next_lag:
                    self.export_lag()
                if now >= self._next_flush:
                    self.flush_profiles()
        finally:
            self.flush_profiles(everything=True)
        return self.stats

    def flush_profiles(self, *, everything: bool = False) -> int:
        """Write the recorder's changed buckets durably (store, or spill log); returns how many.

        ``everything`` also forgets the open buckets (when the consumer stops).
        """
        self._next_flush = time.monotonic() + self.flush_seconds
        if self.recorder is None:
            return 0
        rows = self.recorder.drain(everything=everything)
        if rows:
            try:
                self.writer.write_now("bucket", rows)
            except Exception as exc:  # profiles are best effort; predictions are not
                log.error("could not write %d profile bucket(s): %s", len(rows), exc)
                return 0
        return len(rows)

    def export_lag(self) -> dict[tuple[str, int], int]:
        """Set ``driftline_stream_lag_events`` from the source (best effort); returns the lag
        per ``(stream, partition)``. Partitions this consumer no longer owns are dropped."""
        self._next_lag = time.monotonic() + self.lag_every_seconds
        try:
            lag = self.source.lag()
        except StreamError as exc:
            log.warning("could not read the stream lag: %s", exc)
            return {}
        series = {(stream, str(partition)): value for (stream, partition), value in lag.items()}
        for key in self._lag_series - series.keys():
            self.stream_metrics.lag.remove(*key)
        for (stream, partition), value in series.items():
            self.stream_metrics.lag.labels(stream=stream, partition=partition).set(value)
        self._lag_series = set(series)
        return lag

    def step(self, limit: int | None = None) -> int:
        """Take and handle one batch of at most ``limit`` events; returns the events acked.

        A broker or store failure abandons the batch: it stays pending, the source rewinds and
        the next step delivers it again (after ``retry_seconds``).
        """
        bundle = self.champion
        if bundle is None:
            raise RuntimeError("no champion loaded; call check_for_new_model() first")
        count = self.batch_size if limit is None else max(1, min(limit, self.batch_size))
        try:
            events = self._next_batch(count)
            if not events:
                return 0
            return self._handle(bundle, events)
        except (StreamError, StoreUnavailableError) as exc:
            reason = "store" if isinstance(exc, StoreUnavailableError) else "stream"
            log.warning("batch abandoned, will be delivered again: %s", exc)
            self.stats.failed_batches += 1
            self.stream_metrics.failures.labels(reason=reason).inc()
            self._stop.wait(self.retry_seconds)
            try:
                self.source.rewind()
            except StreamError:  # pragma: no cover - rewinding is local for Redis and Kafka
                log.exception("rewind failed")
            return 0

    # --- models ---------------------------------------------------------------------------------

    def check_for_new_model(self, *, reason: str = "poll") -> bool:
        """Load the champion if its alias moved; ``True`` when the served model changed."""
        aliases = self.registry.aliases()
        self.metrics.set_model(CHALLENGER, aliases.get(CHALLENGER))
        version = aliases.get(CHAMPION)
        current = self.champion.version if self.champion is not None else None
        if version is None or version == current:
            return False
        try:
            bundle = self.registry.load(version)
        except Exception:
            self.metrics.reloads.labels(result="error").inc()
            raise
        use_compiled = getattr(bundle.model, "use_compiled", None)
        if use_compiled is not None and not self.compiled_preprocessing:
            use_compiled(False)
        self.champion = bundle  # batches take the bundle once, so a swap never splits one
        self.metrics.set_model(CHAMPION, version, bundle.kind)
        if current is not None:
            self.metrics.reloads.labels(result="ok").inc()
        log.info("stream consumer predicts with version %s (%s; was %s)", version, reason, current)
        return True

    def _poll_model(self) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.reload_poll_seconds
        try:
            self.check_for_new_model(reason="startup" if self.champion is None else "poll")
        except Exception as exc:
            log.warning("alias poll failed: %s", exc)

    # --- one batch ------------------------------------------------------------------------------

    def _next_batch(self, count: int) -> list[StreamEvent]:
        now = time.monotonic()
        if now >= self._next_claim:
            claimed = self.source.claim_stale(count)
            if len(claimed) < count:  # nothing more stale for now: look again later
                self._next_claim = now + self.claim_every_seconds
            if claimed:
                self.stats.claimed += len(claimed)
                self.stream_metrics.claimed.inc(len(claimed))
                log.info("claimed %d stale event(s) of other consumers", len(claimed))
                return claimed
        return self.source.read(count, self.block_ms)

    def _handle(self, bundle: ModelBundle, events: list[StreamEvent]) -> int:
        before = dataclasses.replace(self.stats)
        with tracing.span(
            "driftline.stream.batch",
            {
                "driftline.stream": self.source.name,
                "driftline.stream.consumer": self.source.consumer,
                "driftline.stream.events": len(events),
                "driftline.model.version": bundle.version or 0,
            },
        ) as span:
            done = self._handle_batch(bundle, events)
            span.set_attribute("driftline.rows", self.stats.predicted - before.predicted)
            span.set_attribute(
                "driftline.stream.dead_lettered", self.stats.dead_lettered - before.dead_lettered
            )
        return done

    def _handle_batch(self, bundle: ModelBundle, events: list[StreamEvent]) -> int:
        started = time.perf_counter()
        trimmed = [e.id for e in events if not e.fields]
        rejected: list[tuple[StreamEvent, str, list[dict[str, Any]]]] = []
        accepted: list[tuple[StreamEvent, str, dict[str, Any]]] = []
        labels: list[tuple[StreamEvent, dict[str, Any]]] = []
        for event in events:
            if not event.fields:
                continue
            if is_label_event(event):
                label, errors = decode_label(event)
                if label is None:
                    rejected.append((event, "malformed", errors))
                else:
                    labels.append((event, {**label, "ts": time.time()}))
                continue
            features, request_id, errors = decode_event(event)
            if errors:
                rejected.append((event, "malformed", errors))
                continue
            record, problems = bundle.schema.check_record(features, ("features",))
            if problems or record is None:
                rejected.append((event, "validation", problems))
                continue
            accepted.append((event, request_id or self.source.request_id(event), record))

        outcomes = self._predict(bundle, [record for _, _, record in accepted])
        now = time.time()
        elapsed = time.perf_counter() - started
        version = bundle.version if bundle.version is not None else 0
        rows: list[dict[str, Any]] = []
        predicted: list[tuple[StreamEvent, dict[str, Any]]] = []
        for (event, request_id, record), outcome in zip(accepted, outcomes, strict=True):
            if outcome.error is not None:
                error = {"loc": ["features"], "msg": outcome.error, "type": "model_error"}
                rejected.append((event, "model_error", [error]))
                continue
            row = {
                "request_id": request_id,
                "ts": now,
                "model_name": self.model_name,
                "model_version": version,
                "variant": "champion",
                "source": "stream",
                "features": record,
                "prediction": label_text(outcome.label),
                "probabilities": outcome.probabilities or {},
                "confidence": outcome.confidence,
                "latency_ms": elapsed * 1000.0,
            }
            rows.append(row)
            predicted.append((event, row))

        # Dead letters first, acked at once: a later failure of this batch must not send them
        # to the dead-letter stream a second time.
        if rejected or trimmed:
            self._dead_letter(rejected)
            self.source.ack([e.id for e, _, _ in rejected] + trimmed)
            self.stats.events += len(rejected) + len(trimmed)
            if trimmed:
                self.stream_metrics.events.labels(outcome="trimmed").inc(len(trimmed))
            if self.recorder is not None:  # what the HTTP path counts for a refused request
                invalid = sum(1 for _, reason, _ in rejected if reason == "validation")
                if invalid:
                    self.recorder.observe_rejected(version, invalid)
                failed = sum(1 for _, reason, _ in rejected if reason == "model_error")
                if failed:
                    self.recorder.observe_requests(version, (), errors=failed)

        if labels:
            label_rows = [row for _, row in labels]
            durable = self.writer.write_now("label", label_rows)
            self.metrics.labels.labels(durable=durable).inc(len(label_rows))
        if rows:
            durable = self.writer.write_now("prediction", rows)
            if durable == "spill":
                self.stats.spilled += len(rows)
            self.source.publish([_output_entry(e, row, durable) for e, row in predicted])
        if rows or labels:
            self.source.ack([e.id for e, _ in predicted] + [e.id for e, _ in labels])
            self.stats.events += len(rows) + len(labels)
            self.stats.predicted += len(rows)
            self.stats.labels += len(labels)
            if labels:
                self.stream_metrics.events.labels(outcome="label").inc(len(labels))
        if rows:
            self._count_predictions(rows, elapsed)
            if self.recorder is not None:
                self.recorder.observe_requests(version, [elapsed * 1000.0] * len(rows))
        self.stats.batches += 1
        self.stream_metrics.batch_duration.observe(time.perf_counter() - started)
        return len(events)

    def _predict(self, bundle: ModelBundle, records: list[dict[str, Any]]) -> list[_Outcome]:
        """One model call for the batch; if it fails, row by row so one bad row fails alone."""
        if not records:
            return []
        try:
            predictions = bundle.predict_records(records)
        except Exception as exc:
            log.warning(
                "model call failed for a batch of %d (%s); retrying row by row", len(records), exc
            )
            return [self._predict_one(bundle, record) for record in records]
        self._notify(bundle, records, predictions)
        return [_outcome(predictions, i) for i in range(len(records))]

    def _predict_one(self, bundle: ModelBundle, record: dict[str, Any]) -> _Outcome:
        try:
            predictions = bundle.predict_records([record])
        except Exception as exc:
            self.metrics.prediction_errors.labels(reason="model").inc()
            return _Outcome(error=f"model failed on this event: {exc}")
        self._notify(bundle, [record], predictions)
        return _outcome(predictions, 0)

    def _notify(
        self, bundle: ModelBundle, records: list[dict[str, Any]], predictions: Predictions
    ) -> None:
        self.metrics.batch_size.observe(len(records))
        if self.recorder is not None:
            self.recorder.observe(bundle, records, predictions, variant="champion")
        for listener in self.listeners:
            try:
                listener(bundle, records, predictions)
            except Exception:
                log.exception("batch listener failed")

    def _dead_letter(self, rejected: list[tuple[StreamEvent, str, list[dict[str, Any]]]]) -> None:
        if not rejected:
            return
        now = str(time.time())
        entries: list[dict[str, str]] = []
        for event, reason, errors in rejected:
            entries.append(
                {
                    **event.fields,  # the original event, so it can be sent again once fixed
                    "event_id": event.id,
                    "reason": reason,
                    "errors": json.dumps(errors, default=str),
                    "consumer": self.source.consumer,
                    "ts": now,
                }
            )
        self.source.dead_letter(entries)
        for _, reason, errors in rejected:
            if reason == "validation":
                self.schema_violations += len(errors)
            if reason != "model_error":
                self.metrics.rejected.labels(endpoint=ENDPOINT, reason=reason).inc()
        self.stats.dead_lettered += len(rejected)
        self.stream_metrics.events.labels(outcome="dead_letter").inc(len(rejected))
        log.info("%d event(s) sent to the dead-letter stream", len(rejected))

    def _count_predictions(self, rows: list[dict[str, Any]], elapsed: float) -> None:
        metrics = self.metrics
        latency = metrics.prediction_latency.labels(variant="champion")
        for row in rows:
            latency.observe(elapsed)
            metrics.predictions.labels(variant="champion", predicted_class=row["prediction"]).inc()
            metrics.confidence.observe(row["confidence"])
        self.stream_metrics.events.labels(outcome="predicted").inc(len(rows))


def _outcome(predictions: Predictions, i: int) -> _Outcome:
    label, probabilities, confidence = predictions.row(i)
    return _Outcome(label=label, probabilities=probabilities, confidence=confidence)


def _output_entry(event: StreamEvent, row: dict[str, Any], durable: str) -> dict[str, str]:
    return {
        "request_id": row["request_id"],
        "event_id": event.id,
        "prediction": row["prediction"],
        "probabilities": json.dumps(row["probabilities"]),
        "confidence": repr(row["confidence"]),
        "model_version": str(row["model_version"]),
        "variant": row["variant"],
        "durable": durable,
        "ts": repr(row["ts"]),
    }
