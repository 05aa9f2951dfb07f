"""Everything one serving worker holds, and its lifecycle: store, writer, registry, the
champion and its hot reload, the batcher, the window recorder, the event hub and metrics, wired
to the worker's parts kept in their own modules -- canary routing (:mod:`.routing`), shadow
copies (:mod:`.shadow`), the scheduled jobs (:mod:`.jobs`), online learning
(:mod:`.online_learning`). Built in the app's lifespan and kept on ``app.state.runtime``; the
request path is :mod:`.prediction`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from driftline.config import Settings
from driftline.errors import OverloadedError
from driftline.models.base import Predictions
from driftline.models.bundle import ModelBundle
from driftline.monitoring.window import WindowRecorder
from driftline.registry import CHALLENGER, CHAMPION, Registry
from driftline.scheduler import Scheduler
from driftline.service import heap
from driftline.service.batcher import MicroBatcher
from driftline.service.events import EventHub
from driftline.service.jobs import WorkerJobs
from driftline.service.lookup import FeastLookup
from driftline.service.metrics import ServiceMetrics, WriterMetricsListener
from driftline.service.online_learning import OnlineLearner
from driftline.service.routing import CanaryRouting, set_preprocessing, variant_of
from driftline.service.shadow import ShadowCopies
from driftline.store import (
    Store,
    StoreTimeouts,
    StoreWriter,
    is_reachable,
    open_store,
    record_handlers,
)
from driftline.threads import limit_native_threads, model_thread_budget, threads_per_worker

__all__ = ["ServingRuntime"]

#: The longest one shutdown step (before the writer's drain) may take.
STOP_STEP_SECONDS = 45.0


async def _bounded(step: str, awaitable: Any, seconds: float = STOP_STEP_SECONDS) -> None:
    """Await one shutdown step for at most ``seconds``; log (never raise) when it does not end."""
    try:
        await asyncio.wait_for(awaitable, timeout=seconds)
    except TimeoutError:
        log.error("stopping: %s did not end within %.0fs; going on", step, seconds)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("stopping: %s failed; going on", step)


log = logging.getLogger(__name__)


class ServingRuntime:
    """The state of one API worker."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        registry: Registry | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ServiceMetrics()
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._store = store
        self._owns_store = store is None  # opened here: closed here on stop
        self._registry = registry
        self.writer: StoreWriter | None = None
        self.champion: ModelBundle | None = None
        #: Native (OpenMP/BLAS) threads of this worker: cores ÷ workers unless configured.
        self.native_threads = threads_per_worker(settings.workers, settings.threads_per_worker)
        #: OpenMP threads of the model thread: 1 unless configured (see model_thread_budget).
        self.model_threads = model_thread_budget(settings.model_threads)
        #: The pools as threadpoolctl reported them on the model thread at start-up.
        self.native_thread_pools: list[dict[str, Any]] = []
        self.batcher = MicroBatcher(
            max_wait_ms=settings.microbatch_max_wait_ms,
            max_size=settings.microbatch_max_size,
            on_batch_rows=self.metrics.batch_size.observe,
            native_threads=self.model_threads,
        )
        self.hub = EventHub(
            rate=settings.ws_max_events_per_second,
            buffer=settings.ws_queue_size,
            on_drop=self.metrics.ws_dropped.inc,
        )
        self.recorder = WindowRecorder(
            worker_id=self.worker_id,
            bucket_seconds=settings.monitor_bucket_seconds,
            sample_rows=settings.monitor_sample_rows,
        )
        self.batcher.listeners.append(self._profile_batch)
        #: Online feature lookups by entity (DRIFTLINE_FEAST_REPO); ``None`` without a repo.
        self.feast: FeastLookup | None = None
        if settings.feast_repo is not None:
            from driftline.featurestore import FeatureRepo  # noqa: PLC0415 — Feast only with a repo

            self.feast = FeastLookup(
                FeatureRepo(settings.feast_repo),
                max_rows=settings.microbatch_max_size,
                on_lookup=self._observe_lookup,
            )
        self._tasks: list[asyncio.Task[None]] = []
        #: Held while the served champion changes (alias poll, online checkpoints).
        self.reload_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.scheduler: Scheduler | None = None
        self._jobs: WorkerJobs | None = None
        #: The rollout this worker follows: canary routing, the challenger for shadow copies.
        self.routing = CanaryRouting(settings, self.metrics)
        self.shadows = ShadowCopies(self.batcher, self.metrics)
        #: Online learning of an online champion (labels → learn_one → checkpoints).
        self.online = OnlineLearner(self)
        self.started_at = time.time()
        #: Fields refused by validation since start (a data-quality signal for the monitor).
        self.schema_violations = 0
        self._heap_frozen = False

    # --- parts ----------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("runtime not started")
        return self._store

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            raise RuntimeError("runtime not started")
        return self._registry

    @property
    def jobs(self) -> WorkerJobs:
        """The scheduled jobs (their bodies; the scheduler's leader runs them)."""
        if self._jobs is None:
            raise RuntimeError("runtime not started")
        return self._jobs

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        settings.ensure_home()
        limit_native_threads(self.native_threads)
        if self._store is None:
            timeouts = StoreTimeouts.from_settings(settings)
            self._store = await asyncio.to_thread(
                functools.partial(open_store, settings.database_url, timeouts=timeouts)
            )
        if self._registry is None:
            self._registry = Registry.from_settings(settings, self._store)
        self._jobs = WorkerJobs(
            settings,
            self.metrics,
            store=self._store,
            registry=self._registry,
            served=lambda: self.champion,
            write_recent=self.write_recent,
            publish=self.publish_threadsafe,
        )
        self.writer = StoreWriter(
            self._store.engine,
            self._store.sessions,
            record_handlers(),
            settings.spill_dir,
            queue_size=settings.queue_size,
            batch_size=settings.write_batch_size,
            flush_interval=settings.flush_interval_seconds,
            listener=WriterMetricsListener(self.metrics),
        )
        self.writer.start()
        self.metrics.store_up.set(1)
        self.metrics.queue_capacity.set(settings.queue_size)
        await self.batcher.start()
        if self.feast is not None:
            await self.feast.start()
        self.native_thread_pools = await self.batcher.native_thread_pools()
        try:
            await self.check_for_new_model(reason="startup")
        except Exception as exc:  # keep serving /health; /ready says why
            log.warning("no model loaded at start-up: %s", exc)
        if settings.gc_freeze:
            heap.set_gen0_threshold(settings.gc_gen0_threshold)
            heap.freeze()
            self._heap_frozen = True
        self._tasks.append(asyncio.create_task(self._poll_aliases(), name="driftline-reload"))
        self._tasks.append(asyncio.create_task(self._refresh_gauges(), name="driftline-gauges"))
        self._tasks.append(asyncio.create_task(self._profile_loop(), name="driftline-profiles"))
        self._tasks.append(asyncio.create_task(self._export_loop(), name="driftline-export"))
        await self.online.start()
        self._loop = asyncio.get_running_loop()
        if settings.alerts_enabled:
            _ = self.jobs.alert_runner  # from now on, rate rules see what happens
        if settings.scheduler:
            self.scheduler = Scheduler(
                store=self.store,
                worker_id=self.worker_id,
                jobs=self.jobs.schedule(),
                lease_seconds=max(3.0, min(30.0, settings.concept_poll_seconds * 6)),
                native_threads=self.native_threads,
            )
            await self.scheduler.start()

    async def stop(self) -> None:
        # Each step before the writer's drain is bounded (and says which one hung): a stuck
        # step must never keep acknowledged records from being written on a graceful stop.
        await _bounded("online learning", self.online.stop())
        if self.scheduler is not None:
            await _bounded("scheduler", self.scheduler.stop())
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await _bounded(f"task {task.get_name()}", task)
        self._tasks.clear()
        if self.shadows.in_flight:  # copies in flight finish on the batcher before it stops
            await _bounded("shadow copies", self.shadows.wait())
        await _bounded("micro-batcher", self.batcher.stop())
        if self.feast is not None:
            await _bounded("Feast lookups", self.feast.stop())
        if self.writer is not None:
            await asyncio.to_thread(self.flush_buckets, everything=True)
            await asyncio.to_thread(self.writer.stop)
        if self._owns_store and self._store is not None:
            # waits for threads of cancelled tasks still holding a connection, so none is
            # left open behind the discarded pool
            await asyncio.to_thread(self._store.dispose)

    def _observe_lookup(self, seconds: float, outcome: str, rows: int) -> None:
        self.metrics.feast_lookup.labels(outcome=outcome).observe(seconds)

    # --- models ---------------------------------------------------------------------------------

    async def check_for_new_model(self, *, reason: str = "poll") -> bool:
        """Load the champion if its alias moved; ``True`` when the served model changed."""
        async with self.reload_lock:
            aliases = await asyncio.to_thread(self.registry.aliases)
            self.metrics.set_model(CHALLENGER, aliases.get(CHALLENGER))
            version = aliases.get(CHAMPION)
            current = self.champion.version if self.champion is not None else None
            if version is None or version == current:
                return False
            try:
                bundle = await asyncio.to_thread(self.registry.load, version)
            except Exception:
                self.metrics.reloads.labels(result="error").inc()
                raise
            # One reference assignment: requests in flight keep the bundle they already hold.
            self.champion = set_preprocessing(bundle, self.settings)
            if self._heap_frozen:
                heap.refreeze()  # the new model out of collections, the old one collected
            self.metrics.set_model(CHAMPION, version, bundle.kind)
            if current is not None:
                self.metrics.reloads.labels(result="ok").inc()
            log.info("serving version %s (%s; was %s)", version, reason, current)
            self.hub.publish(
                {
                    "type": "model_updated",
                    "version": version,
                    "previous_version": current,
                    "kind": bundle.kind,
                    "reason": reason,
                    "ts": time.time(),
                }
            )
            return True

    async def _poll_aliases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_poll_seconds)
            try:
                await self.check_for_new_model()
                await self.refresh_rollout()
            except Exception as exc:
                log.warning("alias poll failed: %s", exc)

    async def refresh_rollout(self) -> None:
        """Follow the rollout state in the store (see :meth:`CanaryRouting.refresh`)."""
        await self.routing.refresh(self.store, self.registry)

    def shadow(self, records: list[dict[str, Any]], answers: list[dict[str, Any]]) -> None:
        """Send a copy of answered traffic to the shadowing challenger, off the hot path."""
        challenger = self.routing.shadowing()
        if challenger is None or self.writer is None:
            return
        self.shadows.send(challenger, records, answers, self.writer)

    def variant_of(self, bundle: ModelBundle) -> str:
        """Which role a bundle plays for the request it answered."""
        return variant_of(bundle, self.champion)

    def _profile_batch(
        self, bundle: ModelBundle, records: Sequence[Mapping[str, Any]], predictions: Predictions
    ) -> None:
        self.recorder.observe(bundle, records, predictions, variant=self.variant_of(bundle))

    async def _profile_loop(self) -> None:
        """Profile queued rows a few times a second; write bucket snapshots periodically."""
        last_flush = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            try:
                await asyncio.to_thread(self.recorder.process_pending)
                if time.monotonic() - last_flush >= self.settings.monitor_flush_seconds:
                    last_flush = time.monotonic()
                    await asyncio.to_thread(self.flush_buckets)
            except Exception:
                log.exception("profiling or bucket flush failed")

    def flush_buckets(self, *, everything: bool = False) -> int:
        """Write this worker's changed buckets (durably: store, or spill log)."""
        if self.writer is None:
            return 0
        rows = self.recorder.drain(everything=everything)
        if rows:
            self.writer.write_now("bucket", rows)
        return len(rows)

    def write_recent(self) -> None:
        """Write this worker's changed buckets and queued records now (before a job reads its
        recent traffic from the store)."""
        self.flush_buckets()
        if self.writer is not None:
            self.writer.flush(5.0)

    def publish_threadsafe(self, event: dict[str, Any]) -> None:
        """Publish a live event from a job thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.hub.publish, event)

    async def _export_loop(self) -> None:
        """Every worker exports the latest report's figures (whoever wrote it)."""
        while True:
            await asyncio.sleep(5.0)
            try:
                latest = await asyncio.to_thread(self.jobs.latest_report)
                if latest is not None:
                    self.jobs.export_if_new(latest)
            except Exception as exc:
                log.debug("report export skipped: %s", exc)

    async def _refresh_gauges(self) -> None:
        while True:
            self.refresh_gauges()
            await asyncio.sleep(1.0)

    def refresh_gauges(self) -> None:
        if self.writer is not None:
            self.metrics.queue_depth.set(self.writer.depth)
            self.metrics.writer_oldest_unwritten.set(self.writer.oldest_unwritten_age())
        self.metrics.ws_clients.set(len(self.hub))

    # --- logging --------------------------------------------------------------------------------

    async def log_prediction(self, row: dict[str, Any]) -> None:
        """Queue a prediction record; wait briefly for room, else refuse (never drop)."""
        writer = self.writer
        assert writer is not None
        if writer.offer("prediction", row):
            return
        deadline = time.monotonic() + self.settings.queue_full_timeout_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            if writer.offer("prediction", row):
                return
        self.metrics.queue_full.inc()
        raise OverloadedError(
            f"prediction log queue full ({writer.capacity} records); retry shortly"
        )

    def record_labels(self, rows: list[dict[str, Any]]) -> str:
        """Make labels durable before they are acknowledged (blocking; run in a thread)."""
        assert self.writer is not None
        durable = self.writer.write_now("label", rows)
        self.metrics.labels.labels(durable=durable).inc(len(rows))
        self.online.notify()
        return durable

    async def store_reachable(self) -> bool:
        """Whether the store answers a trivial query now, bounded by the connect timeout (a
        silent network answers ``False`` instead of hanging the caller)."""
        limit = StoreTimeouts.from_settings(self.settings).connect + 1.0
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(is_reachable, self.store.engine), timeout=limit
            )
        except TimeoutError:
            return False

    def writer_problems(self) -> list[str]:
        """Why the store writer is not draining (empty when it is)."""
        if self.writer is None:
            return []
        return self.writer.problems(self.settings.writer_max_unwritten_age_seconds)
