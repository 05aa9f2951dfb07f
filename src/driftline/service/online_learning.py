"""Online learning in serving: an online champion learns each label as it arrives.

When the champion is an online model (:class:`~driftline.models.online.ARFModel`) and
``DRIFTLINE_ONLINE_LEARNING`` is on, one worker — the holder of a lease in the store — tails
the labels table, joins each label with the features of its stored prediction, and has the
serving champion learn it (``learn_one``) in a background thread. The model's own lock lets
predictions go on meanwhile. Every ``DRIFTLINE_ONLINE_CHECKPOINT_LABELS`` learned labels, or
``DRIFTLINE_ONLINE_CHECKPOINT_SECONDS`` after the first label not yet saved, the learner
registers a checkpoint: a new version (tags ``driftline.checkpoint_of`` and
``driftline.learned``, holdout metrics recomputed) that the champion alias then moves to, with
actor ``online-learning``. Other workers and replicas converge on it by the usual alias poll;
the monitor, alerts and the closed loop watch it like any other version.

Labels are read from the store, not from the request that carried them, so labels posted to
any worker and labels loaded with ``driftline labels import`` are learned alike. A label is
read once it has settled (twice ``DRIFTLINE_FLUSH_INTERVAL_SECONDS`` old, so that its
prediction has been written); a label whose prediction is not in the store by then is not
learned (it still counts for monitoring). A POST /labels wakes the learner of its worker.

Exactly-once, across restarts and leader changes: the learner's position in the label stream
(a cursor of label time and request id) is saved in the store with each checkpoint, for that
checkpoint's version. A learner that takes over a version resumes from the cursor saved with
it, so the labels learned after the last checkpoint by a worker that died are learned again,
by the version that had not seen them. A version without a saved cursor (newly trained or
promoted) learns the labels that arrive after it became champion.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Final, Protocol

from driftline.config import Settings
from driftline.errors import DataError
from driftline.models.bundle import PROBA_PREFIX, ModelBundle
from driftline.models.evaluation import classification_metrics
from driftline.models.online import ARFModel
from driftline.registry import CHAMPION, Registry
from driftline.service.events import EventHub
from driftline.service.metrics import ServiceMetrics
from driftline.store import Store, queries
from driftline.training import stratified_sample

__all__ = ["ACTOR", "LearnerHost", "OnlineLearner", "checkpoint_bundle", "state_key"]

log = logging.getLogger(__name__)

#: The actor of checkpoint registrations and alias moves in the audit log.
ACTOR: Final = "online-learning"
#: Labels read from the store per query.
BATCH: Final = 500
#: Most holdout rows a checkpoint is evaluated on.
EVALUATION_ROWS: Final = 5_000
#: Seconds before a failed checkpoint is tried again.
RETRY_SECONDS: Final = 30.0


def state_key(model_name: str) -> str:
    """The store state entry holding the learner's cursor for the latest checkpoint."""
    return f"online_learning:{model_name}"


def _lease_name(model_name: str) -> str:
    return f"online:{model_name}"[:100]


class LearnerHost(Protocol):
    """What the learner uses of its worker (:class:`~driftline.service.runtime.ServingRuntime`)."""

    settings: Settings
    metrics: ServiceMetrics
    hub: EventHub
    worker_id: str
    #: The served champion; the learner swaps in each checkpoint under :attr:`reload_lock`.
    champion: ModelBundle | None
    reload_lock: asyncio.Lock

    @property
    def store(self) -> Store: ...

    @property
    def registry(self) -> Registry: ...


class OnlineLearner:
    """The online learning of one serving worker (active only while it holds the lease)."""

    def __init__(self, runtime: LearnerHost) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        #: The champion bundle being learned (the learner re-reads its cursor when it changes).
        self.bundle: ModelBundle | None = None
        #: Position in the label stream: ``(label time, request id)`` of the last label read.
        self.cursor: tuple[float, str] = (0.0, "")
        #: Labels learned since the last checkpoint.
        self.pending = 0
        #: Labels learned by this version's lineage since it was trained (saved with checkpoints).
        self.learned_total = 0
        self.is_leader = False
        self._first_pending_at: float | None = None
        self._retry_at = 0.0
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.settings.online_learning)

    @property
    def settle_seconds(self) -> float:
        """How old a label must be before it is read (its prediction has been written)."""
        return 2.0 * float(self.settings.flush_interval_seconds)

    async def start(self) -> None:
        if not self.enabled or self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="driftline-online-learning")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self.is_leader:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release_lease)
            self.is_leader = False

    def notify(self) -> None:
        """Labels arrived (any thread): learn them as soon as they have settled."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(loop.call_later, self.settle_seconds + 0.05, wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.online_poll_seconds)
            self._wake.clear()
            try:
                await self.step()
            except Exception:
                log.exception("online learning step failed")

    # --- one round --------------------------------------------------------------------------------

    async def step(self) -> int:
        """Learn the labels that settled since the last round; checkpoint when due.

        Returns the number of labels learned.
        """
        bundle = self.runtime.champion
        if bundle is None or bundle.version is None or not isinstance(bundle.model, ARFModel):
            self.bundle = None
            return 0
        self.is_leader = await asyncio.to_thread(self._renew_lease)
        if not self.is_leader:
            self.bundle = None
            return 0
        if bundle is not self.bundle:
            await asyncio.to_thread(self._adopt, bundle)
        learned = await asyncio.to_thread(self._learn_pending, bundle)
        if self.checkpoint_due():
            await self.checkpoint()
        return learned

    def checkpoint_due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.pending <= 0 or now < self._retry_at:
            return False
        if self.pending >= self.settings.online_checkpoint_labels:
            return True
        started = self._first_pending_at
        return started is not None and now - started >= self.settings.online_checkpoint_seconds

    # --- store access (threads) -------------------------------------------------------------------

    def _renew_lease(self) -> bool:
        store = self.runtime.store
        with store.sessions.begin() as session:
            return queries.try_lease(
                _lease_name(self.settings.model_name),
                self.runtime.worker_id,
                seconds=max(10.0, 5.0 * self.settings.online_poll_seconds),
                session=session,
            )

    def _release_lease(self) -> None:
        with self.runtime.store.sessions.begin() as session:
            queries.release_lease(
                _lease_name(self.settings.model_name), self.runtime.worker_id, session=session
            )

    def _adopt(self, bundle: ModelBundle) -> None:
        """Start learning ``bundle``: resume from its saved cursor, or from when it became
        champion."""
        assert bundle.version is not None
        name = self.settings.model_name
        with self.runtime.store.sessions() as session:
            state = queries.get_state(state_key(name), session=session)
            moves = queries.alias_history(
                session=session, model_name=name, alias=CHAMPION, limit=100
            )
        if state is not None and state.get("version") == bundle.version:
            self.cursor = (float(state["after_ts"]), str(state["after_id"]))
            self.learned_total = int(state.get("learned_total", 0))
        else:
            since = next((m.ts for m in moves if m.to_version == bundle.version), time.time())
            self.cursor = (since, "")
            self.learned_total = 0
        self.bundle = bundle
        self.pending = 0
        self._first_pending_at = None
        log.info("online learning version %s from label time %.3f", bundle.version, self.cursor[0])

    def _learn_pending(self, bundle: ModelBundle) -> int:
        """Learn every settled label after the cursor, in label order."""
        model = bundle.model
        assert isinstance(model, ARFModel)
        metrics = self.runtime.metrics
        until = time.time() - self.settle_seconds
        learned = 0
        while self.runtime.champion is bundle:
            with self.runtime.store.sessions() as session:
                rows = queries.labeled_features_since(
                    session=session,
                    after_ts=self.cursor[0],
                    after_id=self.cursor[1],
                    until_ts=until,
                    limit=BATCH,
                )
            for row in rows:
                try:
                    model.learn_one(row["features"] or {}, row["label"])
                except (DataError, TypeError, ValueError) as exc:
                    metrics.online_learned.labels(result="skipped").inc()
                    log.debug("label of %s not learned: %s", row["request_id"], exc)
                else:
                    learned += 1
                    self.pending += 1
                    self.learned_total += 1
                    metrics.online_learned.labels(result="learned").inc()
                    if self._first_pending_at is None:
                        self._first_pending_at = time.monotonic()
                self.cursor = (float(row["label_ts"]), str(row["request_id"]))
                if self.checkpoint_due():
                    return learned  # checkpoint exactly here; the rest is read again after
            if len(rows) < BATCH or self.checkpoint_due():
                break
        return learned

    # --- checkpoints ------------------------------------------------------------------------------

    async def checkpoint(self) -> int | None:
        """Register the learned state as a new version and make it champion.

        Returns the new version, or ``None`` when the champion moved meanwhile (the learned
        state is then dropped with the version it belonged to).
        """
        bundle = self.bundle
        if bundle is None or bundle.version is None:
            return None
        base = bundle.version
        model = bundle.model
        assert isinstance(model, ARFModel)
        registry = self.runtime.registry
        metrics = self.runtime.metrics
        cursor, pending, total = self.cursor, self.pending, self.learned_total
        reason = f"online learning: {pending} labels learned since version {base}"
        try:
            if await asyncio.to_thread(registry.alias, CHAMPION) != base:
                metrics.online_checkpoints.labels(result="superseded").inc()
                self.bundle = None
                return None
            snapshot = await asyncio.to_thread(model.snapshot)
            saved = await asyncio.to_thread(checkpoint_bundle, bundle, snapshot, pending, total)
            version = await asyncio.to_thread(
                registry.register,
                saved,
                actor=ACTOR,
                reason=reason,
                tags={"checkpoint_of": str(base), "learned": str(pending)},
                champion_if_first=False,
            )
            # The version holds exactly the labels up to the cursor: save them together, before
            # the alias moves, so that whoever serves it next resumes there.
            await asyncio.to_thread(self._save_state, version, cursor, total)
            # Move the alias and swap the served bundle under the worker's reload lock, so the
            # alias poll does not reload from the registry what this worker already serves.
            async with self.runtime.reload_lock:
                if await asyncio.to_thread(registry.alias, CHAMPION) != base:
                    metrics.online_checkpoints.labels(result="superseded").inc()
                    self.bundle = None
                    return None
                await asyncio.to_thread(
                    registry.set_alias, CHAMPION, version, actor=ACTOR, reason=reason
                )
                # Keep serving (and learning) the live model, now under the new version.
                live = dataclasses.replace(saved, model=model, version=version)
                self.runtime.champion = live
        except Exception:
            metrics.online_checkpoints.labels(result="error").inc()
            self._retry_at = time.monotonic() + RETRY_SECONDS
            raise
        self.bundle = live
        self.pending = max(0, self.pending - pending)
        self._first_pending_at = time.monotonic() if self.pending else None
        metrics.online_checkpoints.labels(result="ok").inc()
        metrics.set_model(CHAMPION, version, live.kind)
        self.runtime.hub.publish(
            {
                "type": "model_updated",
                "version": version,
                "previous_version": base,
                "kind": live.kind,
                "reason": "online checkpoint",
                "learned": pending,
                "ts": time.time(),
            }
        )
        log.info(
            "online checkpoint: version %s (%s labels since version %s)", version, pending, base
        )
        return version

    def _save_state(self, version: int, cursor: tuple[float, str], total: int) -> None:
        with self.runtime.store.sessions.begin() as session:
            queries.put_state(
                state_key(self.settings.model_name),
                {
                    "version": version,
                    "after_ts": cursor[0],
                    "after_id": cursor[1],
                    "learned_total": total,
                    "ts": time.time(),
                },
                session=session,
            )


def checkpoint_bundle(
    bundle: ModelBundle, model: ARFModel, learned: int, learned_total: int
) -> ModelBundle:
    """The bundle of a checkpoint: ``model`` (a snapshot) with ``bundle``'s schema, reference
    sample and feature profile; holdout metrics, evaluation probabilities, output profile and
    CBPE calibrator recomputed for the snapshot (on at most 5,000 holdout rows)."""
    meta = {
        **bundle.meta,
        "checkpoint_of": bundle.version,
        "learned": learned,
        "learned_total": learned_total,
        "n_learned": model.n_learned,
        "checkpoint_at": time.time(),
    }
    saved = ModelBundle(
        model=model,
        schema=bundle.schema,
        kind=bundle.kind,
        metrics=dict(bundle.metrics),
        reference=bundle.reference,
        evaluation=bundle.evaluation,
        meta=meta,
        monitoring=bundle.monitoring,
    )
    target = bundle.schema.target
    evaluation = bundle.evaluation
    if evaluation is None or target is None or target not in evaluation.columns:
        return saved
    evaluation = stratified_sample(evaluation, EVALUATION_ROWS, by=target, seed=0)
    if len(evaluation) == 0:
        return saved
    proba = model.predict_proba(bundle.schema.coerce_frame(evaluation))
    saved.metrics = classification_metrics(evaluation[target].to_numpy(), proba, model.classes)
    evaluation = evaluation.copy()
    for j, c in enumerate(model.classes):
        evaluation[f"{PROBA_PREFIX}{c}"] = proba[:, j]
    saved.evaluation = evaluation
    if bundle.monitoring is not None and bundle.reference is not None:
        from driftline.monitoring.reference import MonitoringReference, build_reference  # noqa: PLC0415 — monitoring/ loads the store

        rebuilt = build_reference(saved)
        rebuilt.features = MonitoringReference.from_dict(bundle.monitoring).features
        saved.monitoring = rebuilt.to_dict()
    return saved
