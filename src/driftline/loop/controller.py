"""The rollout controller: drives a gated challenger through shadow → canary → promotion →
watch, with the SLO guard, from state kept in the store.

The state (one JSON document per model, key ``rollout:<model>``) is the single truth every API
worker reads: which version shadows or serves as canary, with what share. Only the
scheduler's leader runs :meth:`RolloutController.step`; it measures each variant from the
store (the merged bucket profiles of every worker, shadow answers, labels), asks the pure
:func:`driftline.loop.rollout.stage_verdict`, applies the verdict (alias moves through the
registry) and audits it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from driftline.config import Settings
from driftline.errors import DriftlineError
from driftline.loop.rollout import (
    RolloutPolicy,
    SloPolicy,
    StageVerdict,
    VariantStats,
    stage_verdict,
)
from driftline.monitoring.window import summarize
from driftline.performance import estimate
from driftline.registry import CHALLENGER, CHAMPION, Registry
from driftline.store import Store, queries
from driftline.store.tables import ShadowPrediction

__all__ = [
    "ACTIVE_STAGES",
    "RolloutController",
    "abort_rollout",
    "read_rollout",
    "rollout_policy",
    "start_rollout",
]

log = logging.getLogger(__name__)

ACTIVE_STAGES = ("shadow", "canary", "watch")
STAGE_CODE = {"shadow": 1, "canary": 2, "watch": 3}


def state_key(model_name: str) -> str:
    return f"rollout:{model_name}"


def rollout_policy(settings: Settings) -> RolloutPolicy:
    return RolloutPolicy(
        shadow_min_samples=settings.shadow_min_samples,
        shadow_max_seconds=settings.stage_max_seconds,
        canary_share=settings.canary_share,
        canary_min_samples=settings.canary_min_samples,
        canary_max_seconds=settings.stage_max_seconds,
        watch_min_samples=settings.watch_min_samples,
        watch_seconds=settings.watch_seconds,
        slo=SloPolicy(
            max_error_rate=settings.slo_max_error_rate,
            max_p95_latency_ms=settings.slo_max_p95_latency_ms,
            max_latency_ratio=settings.slo_max_p95_latency_ratio,
            accuracy_tolerance=settings.slo_accuracy_tolerance,
        ),
    )


def read_rollout(store: Store, model_name: str) -> dict[str, Any] | None:
    """The current (or last) rollout of ``model_name``, or ``None``."""
    with store.sessions() as session:
        return queries.get_state(state_key(model_name), session=session)


def _write(store: Store, model_name: str, state: dict[str, Any]) -> None:
    state["updated_ts"] = time.time()
    with store.sessions.begin() as session:
        queries.put_state(state_key(model_name), state, session=session)


def _audit(
    store: Store,
    kind: str,
    message: str,
    *,
    version: int | None,
    details: dict[str, Any],
    actor: str,
    success: bool = True,
) -> None:
    store.audit(kind, message, actor=actor, version=version, details=details, success=success)


def start_rollout(
    store: Store,
    registry: Registry,
    settings: Settings,
    *,
    challenger: int,
    actor: str = "loop",
    stage: str = "shadow",
) -> dict[str, Any]:
    """Give ``challenger`` the challenger alias and start its rollout in ``stage``."""
    current = read_rollout(store, settings.model_name)
    if current is not None and current.get("stage") in ACTIVE_STAGES:
        raise DriftlineError(
            f"a rollout of version {current['challenger']} is in stage {current['stage']}; "
            "abort it first (`driftline rollout abort`)"
        )
    if stage not in ("shadow", "canary"):
        raise DriftlineError(f"a rollout starts in shadow or canary, not {stage!r}")
    champion = registry.alias(CHAMPION)
    if champion is None:
        raise DriftlineError("no champion to roll out against")
    if champion == challenger:
        raise DriftlineError(f"version {challenger} is already the champion")
    registry.set_alias(CHALLENGER, challenger, actor=actor, reason=f"rollout starts in {stage}")
    now = time.time()
    state: dict[str, Any] = {
        "id": uuid.uuid4().hex[:12],
        "stage": stage,
        "champion": champion,
        "challenger": challenger,
        "canary_share": settings.canary_share if stage == "canary" else 0.0,
        "started_ts": now,
        "stage_started_ts": now,
        "baseline": None,
        "last_verdict": None,
        "history": [{"stage": stage, "ts": now, "reasons": [f"started by {actor}"]}],
    }
    _write(store, settings.model_name, state)
    _audit(
        store,
        "rollout",
        f"rollout of version {challenger} against champion {champion} starts in {stage}",
        version=challenger,
        details={"stage": stage, "champion": champion, "rollout_id": state["id"]},
        actor=actor,
    )
    return state


def abort_rollout(
    store: Store, registry: Registry, settings: Settings, *, actor: str, reason: str
) -> dict[str, Any]:
    """Withdraw the challenger of the active rollout (by hand or on a breach)."""
    state = read_rollout(store, settings.model_name)
    if state is None or state.get("stage") not in ("shadow", "canary"):
        raise DriftlineError("no rollout in shadow or canary to abort")
    return _finish(store, registry, settings, state, "aborted", [reason], actor=actor)


def _finish(
    store: Store,
    registry: Registry,
    settings: Settings,
    state: dict[str, Any],
    stage: str,
    reasons: list[str],
    *,
    actor: str,
) -> dict[str, Any]:
    if registry.alias(CHALLENGER) == state["challenger"]:
        registry.remove_alias(CHALLENGER, actor=actor, reason=f"rollout {stage}: {reasons[0]}")
    now = time.time()
    state.update(stage=stage, stage_started_ts=now, canary_share=0.0)
    state["history"].append({"stage": stage, "ts": now, "reasons": reasons})
    _write(store, settings.model_name, state)
    _audit(
        store,
        "rollout",
        f"rollout of version {state['challenger']} {stage}: {'; '.join(reasons)}",
        version=state["challenger"],
        details={"stage": stage, "reasons": reasons, "rollout_id": state["id"]},
        actor=actor,
        success=stage == "done",
    )
    return state


@dataclass
class StepResult:
    verdict: StageVerdict
    state: dict[str, Any]
    candidate: VariantStats
    baseline: VariantStats


class RolloutController:
    """Advances the active rollout one decision at a time (run by the scheduler's leader)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        settings: Settings,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.policy = rollout_policy(settings)
        self.on_event = on_event or (lambda _e: None)

    # --- measuring ------------------------------------------------------------------------------

    def variant_stats(self, version: int, variant: str, start: float) -> VariantStats:
        """Requests, errors, p95 latency, realized and estimated accuracy of one variant."""
        bucket = self.settings.monitor_bucket_seconds
        with self.store.sessions() as session:
            rows = queries.buckets(
                session=session,
                start=(start // bucket) * bucket,
                version=version,
                variant=variant,
            )
            labeled = queries.labeled_by_variant(
                session=session, version=version, variant=variant, start=start
            )
        summary = summarize([r.payload for r in rows], bucket_seconds=bucket)
        estimated = None
        if summary.sketch is not None and summary.sketch.n > 0:
            estimated = estimate(summary.sketch).accuracy
        accuracy = _accuracy(labeled)
        return VariantStats(
            requests=summary.requests,
            errors=summary.errors,
            p95_latency_ms=summary.p95_latency_ms,
            labeled=len(labeled),
            accuracy=accuracy,
            estimated_accuracy=estimated,
        )

    def shadow_stats(self, version: int, start: float) -> VariantStats:
        """The challenger's shadow answers: volume, errors, latency, agreement, accuracy."""
        with self.store.sessions() as session:
            latencies = [
                float(x)
                for x in session.execute(
                    select(ShadowPrediction.latency_ms).where(
                        ShadowPrediction.model_version == version, ShadowPrediction.ts >= start
                    )
                ).scalars()
            ]
            errors = session.execute(
                select(func.count(ShadowPrediction.id)).where(
                    ShadowPrediction.model_version == version,
                    ShadowPrediction.ts >= start,
                    ShadowPrediction.error.is_not(None),
                )
            ).scalar_one()
            agree, compared = session.execute(
                select(
                    func.count(ShadowPrediction.id).filter(ShadowPrediction.agrees.is_(True)),
                    func.count(ShadowPrediction.agrees),
                ).where(ShadowPrediction.model_version == version, ShadowPrediction.ts >= start)
            ).one()
            labeled = queries.shadow_labeled(session=session, version=version, start=start)
        return VariantStats(
            requests=len(latencies),
            errors=int(errors),
            p95_latency_ms=float(np.percentile(latencies, 95)) if latencies else None,
            labeled=len(labeled),
            accuracy=_accuracy(labeled),
            agreement=int(agree) / int(compared) if compared else None,
        )

    def measure(self, state: dict[str, Any]) -> tuple[VariantStats, VariantStats]:
        start = float(state["stage_started_ts"])
        stage = state["stage"]
        if stage == "shadow":
            candidate = self.shadow_stats(state["challenger"], start)
            baseline = self.variant_stats(state["champion"], "champion", start)
        elif stage == "canary":
            candidate = self.variant_stats(state["challenger"], "canary", start)
            baseline = self.variant_stats(state["champion"], "champion", start)
        else:  # watch: the new champion against the old one's numbers before promotion
            candidate = self.variant_stats(state["challenger"], "champion", start)
            saved = state.get("baseline") or {}
            baseline = VariantStats(**saved) if saved else VariantStats()
        return candidate, baseline

    # --- deciding and acting --------------------------------------------------------------------

    def step(self, now: float | None = None) -> StepResult | None:
        """Measure, decide and act once; ``None`` when no rollout is active."""
        now = time.time() if now is None else now
        state = read_rollout(self.store, self.settings.model_name)
        if state is None or state.get("stage") not in ACTIVE_STAGES:
            return None
        candidate, baseline = self.measure(state)
        elapsed = now - float(state["stage_started_ts"])
        verdict = stage_verdict(
            state["stage"],
            candidate=candidate,
            baseline=baseline,
            elapsed_seconds=elapsed,
            policy=self.policy,
        )
        state["last_verdict"] = {
            "ts": now,
            "action": verdict.action,
            "reasons": list(verdict.reasons),
            "candidate": candidate.__dict__,
            "baseline": baseline.__dict__,
        }
        if verdict.action == "wait":
            _write(self.store, self.settings.model_name, state)
        else:
            state = self._apply(state, verdict, candidate, baseline, now)
        return StepResult(verdict, state, candidate, baseline)

    def _apply(
        self,
        state: dict[str, Any],
        verdict: StageVerdict,
        candidate: VariantStats,
        baseline: VariantStats,
        now: float,
    ) -> dict[str, Any]:
        reasons = list(verdict.reasons)
        numbers = {"candidate": candidate.__dict__, "baseline": baseline.__dict__}
        stage = state["stage"]
        challenger = state["challenger"]
        if verdict.action == "abort":
            state = _finish(
                self.store,
                self.registry,
                self.settings,
                state,
                "aborted",
                reasons,
                actor="slo_guard" if "SLO" in reasons[0] else "loop",
            )
            self.on_event(
                {
                    "type": "rollout",
                    "stage": "aborted",
                    "version": challenger,
                    "reasons": reasons,
                    **numbers,
                }
            )
            return state
        if verdict.action == "rollback":
            self.registry.rollback(
                to=state["champion"], actor="slo_guard", reason="; ".join(reasons)
            )
            state = _finish(
                self.store,
                self.registry,
                self.settings,
                state,
                "rolled_back",
                reasons,
                actor="slo_guard",
            )
            self.on_event(
                {
                    "type": "rollback",
                    "from_version": challenger,
                    "to_version": state["champion"],
                    "actor": "slo_guard",
                    "reasons": reasons,
                    **numbers,
                }
            )
            return state
        # advance
        if stage == "shadow":
            state.update(
                stage="canary", stage_started_ts=now, canary_share=self.policy.canary_share
            )
        elif stage == "canary":
            self.registry.promote(
                challenger, actor="loop", reason=f"canary passed: {'; '.join(reasons)}"
            )
            state.update(
                stage="watch",
                stage_started_ts=now,
                canary_share=0.0,
                baseline=dict(baseline.__dict__),
            )
            _audit(
                self.store,
                "promotion",
                f"version {challenger} promoted to champion (was {state['champion']})",
                version=challenger,
                details={"reasons": reasons, **numbers},
                actor="loop",
            )
            self.on_event(
                {
                    "type": "promotion",
                    "version": challenger,
                    "previous_version": state["champion"],
                    "reasons": reasons,
                }
            )
        else:  # watch → done
            return _finish(
                self.store, self.registry, self.settings, state, "done", reasons, actor="loop"
            )
        state["history"].append({"stage": state["stage"], "ts": now, "reasons": reasons})
        _write(self.store, self.settings.model_name, state)
        _audit(
            self.store,
            "rollout",
            f"rollout of version {challenger}: {stage} → {state['stage']}: {reasons[0]}",
            version=challenger,
            details={
                "stage": state["stage"],
                "reasons": reasons,
                "rollout_id": state["id"],
                **numbers,
            },
            actor="loop",
        )
        self.on_event(
            {"type": "rollout", "stage": state["stage"], "version": challenger, "reasons": reasons}
        )
        return state


def _accuracy(pairs: list[dict[str, Any]]) -> float | None:
    if not pairs:
        return None
    return sum(str(p["prediction"]) == str(p["label"]) for p in pairs) / len(pairs)
