"""Everything one serving worker holds: store, writer, registry, the champion, the batcher,
the event hub and metrics. Built in the app's lifespan and kept on ``app.state.runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from driftline import tracing
from driftline.alerts.config import AlertsConfig, load_alerts_config
from driftline.alerts.runner import AlertRunner
from driftline.config import Settings
from driftline.drift.decision import DriftPolicy
from driftline.errors import (
    EntityNotFoundError,
    FeatureStoreUnavailableError,
    OverloadedError,
    PredictionError,
    ValidationError,
)
from driftline.featurestore import FeastSpec, check_entities, merged_features
from driftline.logs import current_request_id, new_request_id
from driftline.loop.controller import ACTIVE_STAGES, STAGE_CODE, RolloutController, read_rollout
from driftline.loop.rollout import canary_routes
from driftline.models.base import Predictions
from driftline.models.bundle import ModelBundle
from driftline.monitoring.concept import update_concept
from driftline.monitoring.exporter import export_report
from driftline.monitoring.monitor import MonitorOptions, run_monitor
from driftline.monitoring.window import WindowRecorder
from driftline.registry import CHALLENGER, CHAMPION, Registry
from driftline.scheduler import Job, Scheduler
from driftline.schema import label_text
from driftline.service import heap
from driftline.service.batcher import MicroBatcher
from driftline.service.events import EventHub
from driftline.service.lookup import FeastLookup
from driftline.service.metrics import ServiceMetrics, WriterMetricsListener
from driftline.service.online_learning import OnlineLearner
from driftline.store import (
    Store,
    StoreTimeouts,
    StoreWriter,
    is_reachable,
    open_store,
    queries,
    record_handlers,
)
from driftline.threads import limit_native_threads, threads_per_worker

__all__ = ["ServingRuntime", "entity_features", "predict_and_log", "validate_records"]

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
        #: The pools as threadpoolctl reported them on the model thread at start-up.
        self.native_thread_pools: list[dict[str, Any]] = []
        self.batcher = MicroBatcher(
            max_wait_ms=settings.microbatch_max_wait_ms,
            max_size=settings.microbatch_max_size,
            on_batch_rows=self.metrics.batch_size.observe,
            native_threads=self.native_threads,
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
        self._reload_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.scheduler: Scheduler | None = None
        self._exported_report: int | None = None
        self._alerts: AlertRunner | None = None
        #: The rollout every worker follows (read from the store each poll) and the
        #: challenger bundle it needs (shadow or canary); ``None`` outside a rollout.
        self.rollout: dict[str, Any] | None = None
        self.challenger: ModelBundle | None = None
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._concept_lock = threading.Lock()
        self._alerts_lock = threading.Lock()
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
            _ = self.alerts  # from now on, rate rules see what happens
        if settings.scheduler:
            self.scheduler = Scheduler(
                store=self.store,
                worker_id=self.worker_id,
                jobs=self.jobs(),
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
        if self._shadow_tasks:  # copies in flight finish on the batcher before it stops
            await _bounded(
                "shadow copies", asyncio.gather(*self._shadow_tasks, return_exceptions=True)
            )
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
        async with self._reload_lock:
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
            use_compiled = getattr(bundle.model, "use_compiled", None)
            if use_compiled is not None and not self.settings.compiled_preprocessing:
                use_compiled(False)
            # One reference assignment: requests in flight keep the bundle they already hold.
            self.champion = bundle
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
        """Follow the rollout state in the store: load or drop the challenger bundle."""
        state = await asyncio.to_thread(read_rollout, self.store, self.settings.model_name)
        stage = state.get("stage") if state else None
        if state is None or stage not in ("shadow", "canary"):
            self.rollout = state
            self.challenger = None
        else:
            version = int(state["challenger"])
            if self.challenger is None or self.challenger.version != version:
                bundle = await asyncio.to_thread(self.registry.load, version)
                use_compiled = getattr(bundle.model, "use_compiled", None)
                if use_compiled is not None and not self.settings.compiled_preprocessing:
                    use_compiled(False)
                self.challenger = bundle
            self.rollout = state
        self.metrics.rollout_stage.set(STAGE_CODE.get(str(stage), 0))
        self.metrics.canary_share.set(self.canary_share)

    @property
    def canary_share(self) -> float:
        state = self.rollout
        if state is None or state.get("stage") != "canary" or self.challenger is None:
            return 0.0
        return float(state.get("canary_share") or 0.0)

    def route(self, champion: ModelBundle, key: str | None) -> ModelBundle:
        """The bundle that answers a request: the canary for its sticky share, else the
        champion. Requests without a key during a canary go to the champion."""
        challenger = self.challenger
        share = self.canary_share
        if challenger is None or share <= 0 or key is None:
            return champion
        return challenger if canary_routes(key, share) else champion

    def shadowing(self) -> ModelBundle | None:
        state = self.rollout
        if state is not None and state.get("stage") == "shadow":
            return self.challenger
        return None

    def shadow(
        self,
        records: list[dict[str, Any]],
        answers: list[dict[str, Any]],
    ) -> None:
        """Send a copy of answered traffic to the shadowing challenger, off the hot path."""
        challenger = self.shadowing()
        if challenger is None or self.writer is None:
            return
        if len(self._shadow_tasks) >= 64:  # never let shadow work pile up behind traffic
            self.metrics.shadow_skipped.inc(len(records))
            return
        task = asyncio.create_task(self._shadow(challenger, records, answers))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self,
        challenger: ModelBundle,
        records: list[dict[str, Any]],
        answers: list[dict[str, Any]],
    ) -> None:
        started = time.perf_counter()
        error: str | None = None
        results: list[Any] | None = None
        try:
            results = await self.batcher.predict(challenger, records)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        now = time.time()
        rows = []
        for i, answer in enumerate(answers):
            row: dict[str, Any]
            if results is None:
                row = {
                    "prediction": None,
                    "probabilities": {},
                    "confidence": None,
                    "agrees": None,
                    "error": error,
                }
            else:
                result = results[i]
                prediction = label_text(result.prediction)
                row = {
                    "prediction": prediction,
                    "probabilities": result.probabilities,
                    "confidence": result.confidence,
                    "agrees": prediction == label_text(answer["prediction"]),
                    "error": None,
                }
            rows.append(
                {
                    "request_id": answer["request_id"],
                    "ts": now,
                    "model_version": challenger.version or 0,
                    "latency_ms": elapsed_ms,
                    **row,
                }
            )
        for row in rows:
            if not self.writer or not self.writer.offer("shadow", row):
                self.metrics.shadow_skipped.inc()

    def variant_of(self, bundle: ModelBundle) -> str:
        """Which role a bundle plays for the request it answered."""
        champion = self.champion
        if champion is None or bundle is champion or bundle.version == champion.version:
            return "champion"
        return "canary"

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

    # --- jobs (run by the scheduler's leader, in threads) --------------------------------------

    def jobs(self) -> list[Job]:
        s = self.settings
        jobs = [
            Job("concept", s.concept_poll_seconds, self.concept_job),
            Job("monitor", s.monitor_interval_seconds, self.monitor_job),
            Job("retention", 3_600.0, self.retention_job),
        ]
        if s.loop_enabled:
            jobs.append(Job("loop", s.loop_interval_seconds, self.loop_job))
        if s.alerts_enabled:
            jobs.append(Job("alerts", s.alerts_interval_seconds, self.alerts_job))
        return jobs

    @property
    def alerts(self) -> AlertRunner:
        if self._alerts is None:
            config = (
                load_alerts_config(self.settings.alerts_config)
                if self.settings.alerts_config is not None
                else AlertsConfig()
            )
            self._alerts = AlertRunner(
                store=self.store,
                metrics=self.metrics,
                config=config,
                model_name=self.settings.model_name,
            )
        return self._alerts

    def alerts_job(self) -> None:
        # Run by its own schedule, after each report and after a rollback: one at a time, so
        # a firing alert is recorded and notified once.
        with self._alerts_lock:
            notifications = self.alerts.run()
        for notification in notifications:
            self.publish_threadsafe(
                {
                    "type": "alert",
                    "kind": notification.kind,
                    "title": notification.title,
                    "severity": notification.severity,
                    "alerts": [e.alert.name for e in notification.alerts],
                    "ts": notification.created,
                }
            )

    def publish_threadsafe(self, event: dict[str, Any]) -> None:
        """Publish a live event from a job thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.hub.publish, event)

    def concept_job(self) -> None:
        version = self.registry.alias(CHAMPION)
        if version is None:
            return
        # The concept job and the monitor job (which runs it first) may overlap: one at a
        # time reads the label cursor, feeds the detectors and writes the state back.
        with self._concept_lock:
            update = update_concept(self.store, self.settings.model_name, version)
        if update.drifts:
            self.metrics.concept_drift_alarms.inc(len(update.drifts))
            for drift in update.drifts:
                self.publish_threadsafe({"type": "alert", "kind": "concept_drift", **drift})

    def monitor_job(self) -> dict[str, Any] | None:
        if self.registry.alias(CHAMPION) is None:
            return None
        self.flush_buckets()
        if self.writer is not None:
            self.writer.flush(5.0)
        self.concept_job()
        try:
            body = run_monitor(
                store=self.store,
                registry=self.registry,
                options=MonitorOptions(
                    window_seconds=self.settings.monitor_window_seconds,
                    bucket_seconds=self.settings.monitor_bucket_seconds,
                    drift=DriftPolicy(report=self.settings.drift_report),
                    estimator=self.settings.monitor_estimator,
                ),
            )
        except Exception:
            self.metrics.monitor_runs.labels(result="error").inc()
            raise
        self.metrics.monitor_runs.labels(result="ok").inc()
        for kind in ("data_drift", "prediction_drift"):
            severity = (body.get(kind) or {}).get("severity")
            if severity in ("warning", "critical"):
                self.metrics.drift_alarms.labels(
                    kind=kind.removesuffix("_drift"), severity=severity
                ).inc()
        export_report(self.metrics, body)
        self._exported_report = body.get("id")
        if self.settings.alerts_enabled:
            try:
                self.alerts_job()  # evaluate right after the figures changed
            except Exception as exc:
                log.warning("alerting after the report failed: %s", exc)
        self.publish_threadsafe(
            {
                "type": "report",
                "id": body.get("id"),
                "ts": body.get("ts"),
                "status": body["status"],
                "data_drift": body["data_drift"]["severity"],
                "drifted_features": [
                    f["feature"]
                    for f in body["data_drift"]["features"]
                    if f["severity"] in ("warning", "critical")
                ],
            }
        )
        return body

    def loop_job(self) -> dict[str, Any] | None:
        """The closed loop, once: advance an active rollout, else retrain if triggered."""
        from driftline.loop.retrain import retrain  # noqa: PLC0415 — the training stack on the first loop run

        # The leader's own recent traffic counts too: write its buckets and log first.
        self.flush_buckets()
        if self.writer is not None:
            self.writer.flush(5.0)
        controller = RolloutController(
            self.store, self.registry, self.settings, on_event=self.loop_event
        )
        step = controller.step()
        if step is not None:
            return {"rollout": step.state, "verdict": step.verdict.action}
        state = read_rollout(self.store, self.settings.model_name)
        if state is not None and state.get("stage") in ACTIVE_STAGES:
            return None
        if self.registry.alias(CHAMPION) is None:
            return None
        outcome = retrain(
            self.store, self.registry, self.settings, actor="loop", served=self.champion
        )
        if outcome.challenger_version is None:
            return None
        for trigger in outcome.trigger.triggers:
            self.metrics.retrains.labels(trigger=trigger).inc()
        assert outcome.gate is not None
        self.metrics.gate_decisions.labels(
            decision="promote" if outcome.gate.promote else "reject"
        ).inc()
        self.loop_event(
            {
                "type": "gate",
                "version": outcome.challenger_version,
                "promote": outcome.gate.promote,
                "reason": outcome.gate.reason,
                "triggers": list(outcome.trigger.triggers),
            }
        )
        return {"retrain": outcome.challenger_version, "promote": outcome.gate.promote}

    def loop_event(self, event: dict[str, Any]) -> None:
        """A closed-loop decision: count it, show it live, and alert on rollbacks."""
        kind = event.get("type")
        if kind == "promotion":
            self.metrics.promotions.inc()
        elif kind == "rollback":
            self.metrics.rollbacks.labels(actor=str(event.get("actor", "slo_guard"))).inc()
        self.publish_threadsafe({"ts": time.time(), **event})
        if kind == "rollback" and self.settings.alerts_enabled:
            try:
                self.alerts_job()  # the rollback rule notifies right away
            except Exception as exc:
                log.warning("alerting after the rollback failed: %s", exc)

    def retention_job(self) -> None:
        cutoff = time.time() - self.settings.retention_days * 86_400
        with self.store.sessions.begin() as session:
            queries.delete_buckets_before(cutoff, session=session)

    async def _export_loop(self) -> None:
        """Every worker exports the latest report's figures (whoever wrote it)."""
        while True:
            await asyncio.sleep(5.0)
            try:
                latest = await asyncio.to_thread(self._latest_report)
                if latest is not None and latest.id != self._exported_report:
                    export_report(self.metrics, latest.body)
                    self._exported_report = latest.id
            except Exception as exc:
                log.debug("report export skipped: %s", exc)

    def _latest_report(self) -> queries.ReportRow | None:
        with self.store.sessions() as session:
            return queries.latest_report(session=session, model_name=self.settings.model_name)

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


# --- the prediction path shared by /predict, /predict/batch and stream consumers -------------


def validate_records(
    runtime: ServingRuntime,
    bundle: ModelBundle,
    features: list[Any],
    locs: list[tuple[str | int, ...]],
    *,
    endpoint: str,
) -> list[dict[str, Any]]:
    """Validate every record against the schema; raise naming every bad field of every row."""
    clean: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for raw, loc in zip(features, locs, strict=True):
        record, problems = bundle.schema.check_record(raw, loc)
        if problems:
            errors.extend(problems)
        elif record is not None:
            clean.append(record)
    if errors:
        runtime.metrics.rejected.labels(endpoint=endpoint, reason="validation").inc()
        runtime.schema_violations += len(errors)
        runtime.recorder.observe_rejected(bundle.version or 0, len(features))
        raise ValidationError(errors)
    return clean


async def entity_features(
    runtime: ServingRuntime,
    bundle: ModelBundle,
    entities: list[Mapping[str, Any] | None],
    inline: list[Any],
    locs: list[tuple[str | int, ...]],
    *,
    endpoint: str,
) -> list[Any]:
    """The features of each request row: for rows that carry entity keys, the model's Feast
    features fetched from the online store, overlaid by those sent inline (inline wins).
    Rows without entity keys keep their inline features. Nothing is predicted until every
    row has all its fetched features: a missing entity raises
    :class:`~driftline.errors.EntityNotFoundError` (404), a store outage
    :class:`~driftline.errors.FeatureStoreUnavailableError` (503)."""
    wanted = [n for n, e in enumerate(entities) if e is not None]
    if not wanted:
        return inline
    spec = FeastSpec.of_bundle_meta(bundle.meta)
    errors: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for n in wanted:
        loc = locs[n]
        if spec is None:
            errors.append(
                {
                    "loc": [*loc, "entities"],
                    "msg": f"model version {bundle.version} was not trained from Feast features "
                    "(driftline train --feast-repo); send its features instead",
                    "type": "no_feast_features",
                }
            )
            continue
        if inline[n] is not None and not isinstance(inline[n], Mapping):
            errors.append(
                {
                    "loc": [*loc, "features"],
                    "msg": "with entities, features must be an object keyed by feature name",
                    "type": "dict_type",
                }
            )
        try:
            keys.append(check_entities(spec, entities[n] or {}, (*loc, "entities")))
        except ValidationError as exc:
            errors.extend(exc.errors)
    if errors:
        runtime.metrics.rejected.labels(endpoint=endpoint, reason="validation").inc()
        raise ValidationError(errors)
    assert spec is not None
    if runtime.feast is None:
        runtime.metrics.prediction_errors.labels(reason="feature_store").inc()
        raise FeatureStoreUnavailableError(
            "this server has no Feast repository: set DRIFTLINE_FEAST_REPO to look features "
            "up by entity"
        )
    try:
        fetched = await runtime.feast.fetch(spec, keys)
    except FeatureStoreUnavailableError:
        runtime.metrics.prediction_errors.labels(reason="feature_store").inc()
        raise
    except EntityNotFoundError:
        runtime.metrics.rejected.labels(endpoint=endpoint, reason="entity_not_found").inc()
        raise
    out = list(inline)
    for n, values in zip(wanted, fetched, strict=True):
        out[n] = merged_features(values, inline[n] or {})
    return out


@tracing.traced("driftline.predict")
async def predict_and_log(
    runtime: ServingRuntime,
    bundle: ModelBundle,
    records: list[dict[str, Any]],
    request_ids: list[str | None],
    *,
    source: str,
    started: float,
) -> list[dict[str, Any]]:
    """Predict validated records, queue their log records and publish live events.

    Returns one response dict per record (the shape of ``PredictResponse``).
    """
    version = bundle.version if bundle.version is not None else 0
    variant = runtime.variant_of(bundle)
    metrics = runtime.metrics
    if tracing.enabled():
        tracing.annotate(
            {
                "driftline.model.version": version,
                "driftline.variant": variant,
                "driftline.rows": len(records),
                "driftline.source": source,
                "driftline.request_id": current_request_id(),
            }
        )
    try:
        results = await runtime.batcher.predict(bundle, records)
    except Exception as exc:
        metrics.prediction_errors.labels(reason="model").inc()
        runtime.recorder.observe_requests(version, (), variant=variant, errors=len(records))
        raise PredictionError(f"the model failed on this request: {exc}") from exc
    now = time.time()
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    metrics.child(metrics.prediction_latency, variant).observe(elapsed_ms / 1000.0)
    runtime.recorder.observe_requests(version, [elapsed_ms] * len(records), variant=variant)
    answers: list[dict[str, Any]] = []
    for record, request_id, result in zip(records, request_ids, results, strict=True):
        rid = request_id or new_request_id()
        label = result.prediction
        row = {
            "request_id": rid,
            "ts": now,
            "model_name": runtime.settings.model_name,
            "model_version": version,
            "variant": variant,
            "source": source,
            "features": record,
            "prediction": label_text(label),
            "probabilities": result.probabilities,
            "confidence": result.confidence,
            "latency_ms": elapsed_ms,
        }
        await runtime.log_prediction(row)
        metrics.child(metrics.predictions, variant, label_text(label)).inc()
        metrics.confidence.observe(result.confidence)
        answer = {
            "request_id": rid,
            "prediction": label,
            "probabilities": result.probabilities,
            "confidence": result.confidence,
            "model_version": version,
            "variant": variant,
            "latency_ms": elapsed_ms,
        }
        if runtime.hub.subscribers:
            runtime.hub.publish({"type": "prediction", "ts": now, **answer})
        answers.append(answer)
    if variant == "champion":
        runtime.shadow(records, answers)
    return answers
