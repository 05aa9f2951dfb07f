"""The retrain job: decide, assemble data, train a challenger, gate it, start its rollout.

I/O lives here (store, registry, files); every decision is one of the pure functions of
:mod:`driftline.loop.trigger` and :mod:`driftline.loop.gate`, and every decision is audited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from driftline.config import Settings
from driftline.errors import DataError
from driftline.loop import dataset
from driftline.loop.controller import start_rollout
from driftline.loop.gate import GateDecision, GateInputs, GatePolicy, decide_promotion
from driftline.loop.trigger import TriggerDecision, TriggerInputs, TriggerPolicy, decide_retrain
from driftline.models.bundle import PROBA_PREFIX, ModelBundle
from driftline.models.evaluation import classification_metrics
from driftline.monitoring.concept import clear_anchor, concept_status
from driftline.registry import CHAMPION, Registry
from driftline.store import Store, queries

__all__ = [
    "RetrainOutcome",
    "gate_challenger",
    "gate_policy",
    "retrain",
    "score",
    "trigger_inputs",
    "trigger_policy",
]

log = logging.getLogger(__name__)

COOLDOWN_KEY = "loop:last-retrain:{model}"


def trigger_policy(settings: Settings) -> TriggerPolicy:
    return TriggerPolicy(
        min_new_labels=settings.retrain_min_labels,
        cooldown_seconds=settings.retrain_cooldown_seconds,
        accuracy_drop=settings.retrain_accuracy_drop,
        retry_growth=settings.retrain_retry_growth,
        retry_seconds=settings.retrain_retry_seconds,
    )


def gate_policy(settings: Settings) -> GatePolicy:
    gain = settings.gate_min_gain
    return GatePolicy(
        min_gains=(gain, gain),
        forgetting_tolerance=settings.gate_forgetting_tolerance,
        max_latency_ms=settings.gate_max_latency_ms,
        max_latency_ratio=settings.gate_max_latency_ratio,
    )


@dataclass(frozen=True)
class RetrainOutcome:
    """What one pass of the retrain job did."""

    trigger: TriggerDecision
    challenger_version: int | None = None
    gate: GateDecision | None = None
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def promoted_to_rollout(self) -> bool:
        return self.gate is not None and self.gate.promote


def drift_anchor(store: Store, settings: Settings, champion_version: int) -> float:
    """Where the drift began.

    The concept detector's anchor when it has one (it places the change on the error
    stream). Otherwise the start of the current run of drifted monitor reports of this
    champion: the first drifted report saw the change within its last interval. Without
    either, the monitor window.
    """
    status = concept_status(store, settings.model_name, champion_version)
    anchor = status.get("anchor_ts")
    if anchor is not None:
        return float(anchor)
    with store.sessions() as session:
        reports = queries.list_reports(session=session, model_name=settings.model_name, limit=500)
    first_drifted: float | None = None
    for report in reports:  # newest first
        severity = (report.body.get("data_drift") or {}).get("severity")
        if report.model_version != champion_version or severity not in ("warning", "critical"):
            break
        first_drifted = report.ts
    if first_drifted is not None:
        return first_drifted - settings.monitor_interval_seconds
    return time.time() - settings.monitor_window_seconds


def trigger_inputs(
    store: Store,
    settings: Settings,
    champion: ModelBundle,
    *,
    forced: bool = False,
    now: float | None = None,
) -> tuple[TriggerInputs, float]:
    """The numbers the trigger looks at, read from the store; also returns the anchor."""
    now = time.time() if now is None else now
    version = champion.version or 0
    anchor = drift_anchor(store, settings, version)
    status = concept_status(store, settings.model_name, version)
    with store.sessions() as session:
        report = queries.latest_report(session=session, model_name=settings.model_name)
        labeled = queries.count_labeled(session=session, start=anchor)
        last = queries.get_state(COOLDOWN_KEY.format(model=settings.model_name), session=session)
    body = report.body if report is not None else {}
    performance = body.get("performance") or {}
    estimated = (performance.get("estimated") or {}).get("accuracy")
    reference = champion.metrics.get("accuracy")
    inputs = TriggerInputs(
        concept_drift_confirmed=bool(status.get("n_drifts")),
        data_drift_severity=str((body.get("data_drift") or {}).get("severity", "none")),
        estimated_accuracy=_value(estimated),
        reference_accuracy=float(reference) if isinstance(reference, int | float) else None,
        new_labeled_samples=labeled,
        seconds_since_last_retrain=None if last is None else now - float(last["ts"]),
        last_retrain_rejected=last is not None and last.get("promote") is False,
        labels_at_last_retrain=(
            int(last["labels"]) if last is not None and last.get("labels") is not None else None
        ),
        forced=forced,
    )
    return inputs, anchor


def _value(x: Any) -> float | None:
    if isinstance(x, dict):
        x = x.get("value")
    return float(x) if isinstance(x, int | float) else None


def score(bundle: ModelBundle, frame: pd.DataFrame, target: str) -> tuple[dict[str, Any], float]:
    """Holdout metrics of ``bundle`` on ``frame`` and its latency in ms per row."""
    x = bundle.schema.coerce_frame(frame.drop(columns=[dataset.SOURCE], errors="ignore"))
    timings = []
    for _ in range(3):  # best of three: one timing on a shared machine is mostly noise
        started = time.perf_counter()
        proba = bundle.model.predict_proba(x)
        timings.append(time.perf_counter() - started)
    per_row_ms = min(timings) * 1000.0 / max(1, len(frame))
    metrics = classification_metrics(frame[target].to_numpy(), proba, bundle.model.classes)
    return metrics, per_row_ms


def gate_challenger(
    champion: ModelBundle,
    challenger: ModelBundle,
    recent_holdout: pd.DataFrame,
    *,
    target: str,
    policy: GatePolicy,
) -> GateDecision:
    """Score both on the recent holdout and on the champion's own (base) holdout; decide."""
    champ_recent, champ_ms = score(champion, recent_holdout, target)
    chall_recent, chall_ms = score(challenger, recent_holdout, target)
    champ_base: dict[str, Any] = {}
    chall_base: dict[str, Any] = {}
    base = champion.evaluation
    if base is not None and target in base.columns:
        base = base[[c for c in base.columns if not str(c).startswith(PROBA_PREFIX)]]
        champ_base, _ = score(champion, base, target)
        chall_base, _ = score(challenger, base, target)
    problems = tuple(champion.schema.compatible_with(challenger.schema))
    keep = policy.metrics
    return decide_promotion(
        GateInputs(
            champion={m: champ_recent.get(m) for m in keep},
            challenger={m: chall_recent.get(m) for m in keep},
            champion_base={m: champ_base.get(m) for m in keep} if champ_base else {},
            challenger_base={m: chall_base.get(m) for m in keep} if chall_base else {},
            schema_problems=problems,
            champion_latency_ms=champ_ms,
            challenger_latency_ms=chall_ms,
        ),
        policy,
    )


def train_challenger(
    champion: ModelBundle, data: dataset.TrainingData, *, seed: int
) -> ModelBundle:
    """Refit a batch model on the assembled data, or continue an online one from the champion."""
    train = data.train.drop(columns=[dataset.SOURCE, dataset.WEIGHT])
    if champion.kind == "arf":
        from driftline.training import continue_training_bundle  # noqa: PLC0415 — scikit-learn's learners only when a retrain runs

        return continue_training_bundle(champion, train, target=data.target, seed=seed)
    from driftline.training import train_model  # noqa: PLC0415 — scikit-learn's learners only when a retrain runs

    recent = data.train[data.train[dataset.SOURCE] != "base"]
    result = train_model(
        train,
        data.target,
        kind=champion.kind,
        seed=seed,
        schema=champion.schema,
        holdout=0.2,
        weights=data.train[dataset.WEIGHT],
        reference_rows=recent.drop(columns=[dataset.SOURCE, dataset.WEIGHT, data.target]),
    )
    return result.bundle


def retrain(
    store: Store,
    registry: Registry,
    settings: Settings,
    *,
    forced: bool = False,
    actor: str = "loop",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    start_rollout_on_pass: bool = True,
    served: ModelBundle | None = None,
) -> RetrainOutcome:
    """One pass: trigger → data → challenger → gate → (rollout). Every step is audited.

    ``served`` is the champion bundle the caller already holds (the server's): when its
    version is the champion alias's, the trigger check uses it instead of loading the model
    again. Loading unpickles the model and reads its reference data, holding the GIL for
    tens of milliseconds: every loop interval, that stalled the requests being served. The
    bundle is loaded afresh only when a retrain is decided (training must not touch the
    served object).
    """
    started = time.perf_counter()
    step = progress or (lambda _s: None)
    champion: ModelBundle | None
    if served is not None and served.version == registry.alias(CHAMPION):
        champion = served
    else:
        champion = registry.load_alias(CHAMPION)
    if champion is None:
        raise DataError("no champion to retrain from; train one with `driftline train`")
    inputs, anchor = trigger_inputs(store, settings, champion, forced=forced)
    decision = decide_retrain(inputs, trigger_policy(settings))
    if not decision.retrain:
        return RetrainOutcome(trigger=decision, seconds=time.perf_counter() - started)
    if champion is served:
        champion = registry.load_alias(CHAMPION)
        if champion is None:
            raise DataError("no champion to retrain from; train one with `driftline train`")
    target = str(champion.schema.target)
    store.audit(
        "retrain_triggered",
        f"retrain of version {champion.version}: {', '.join(decision.triggers)}",
        version=champion.version,
        details={
            "triggers": list(decision.triggers),
            "reasons": list(decision.reasons),
            "inputs": inputs.__dict__,
            "anchor_ts": anchor,
        },
        actor=actor,
    )
    step("assembling training data")
    with store.sessions() as session:
        rows = queries.labeled_predictions(session=session, start=anchor, limit=1_000_000)
    drift = dataset.production_frame(rows, target=target, classes=champion.model.classes)
    base = champion.reference if champion.reference is not None else pd.DataFrame()
    data = dataset.assemble(
        drift,
        base,
        target=target,
        base_rows=settings.retrain_base_rows,
        smote=settings.retrain_smote,
        seed=seed,
    )
    snapshot = dataset.snapshot(data, settings.home / "snapshots")
    step(f"training a {champion.kind} challenger on {len(data.train)} rows")
    challenger = train_challenger(champion, data, seed=seed)
    if "feast" in champion.meta:  # the challenger reads the same Feast features
        challenger.meta["feast"] = champion.meta["feast"]
    challenger.meta.update(
        {
            "data_hash": data.content_hash,
            "parent_version": champion.version,
            "trigger": ",".join(decision.triggers),
        }
    )
    step("gating the challenger against the champion")
    gate = gate_challenger(
        champion, challenger, data.recent_holdout, target=target, policy=gate_policy(settings)
    )
    version = registry.register(
        challenger,
        actor=actor,
        reason=f"retrain after {', '.join(decision.triggers)}",
        tags={
            "parent_version": str(champion.version),
            "data_hash": data.content_hash,
            "trigger": ",".join(decision.triggers),
            "gate": "pass" if gate.promote else "reject",
        },
        champion_if_first=False,
        artifacts={"training-data": snapshot},
    )
    with store.sessions.begin() as session:
        queries.put_state(
            COOLDOWN_KEY.format(model=settings.model_name),
            {
                "ts": time.time(),
                "version": version,
                "promote": gate.promote,
                "labels": int(data.n_drift),
            },
            session=session,
        )
    clear_anchor(store, settings.model_name)
    store.audit(
        "gate",
        f"gate {'passed' if gate.promote else 'rejected'} version {version} "
        f"against champion {champion.version}: {gate.reason}",
        version=version,
        details={
            "promote": gate.promote,
            "reason": gate.reason,
            "checks": [c.__dict__ for c in gate.checks],
            "metrics": gate.metrics,
            "champion_version": champion.version,
            "data": {**data.summary(), "snapshot": str(snapshot)},
        },
        actor=actor,
        success=gate.promote,
    )
    if gate.promote and start_rollout_on_pass:
        start_rollout(store, registry, settings, challenger=version, actor=actor)
    return RetrainOutcome(
        trigger=decision,
        challenger_version=version,
        gate=gate,
        data={**data.summary(), "snapshot": str(snapshot)},
        seconds=time.perf_counter() - started,
    )
