"""The closed loop: when to retrain, whether to promote, how to roll out, when to roll back.

The decisions are pure functions returning small frozen results with their reasons; the jobs
that feed them numbers and act on them live beside them.
"""

from __future__ import annotations

from driftline.loop.gate import GateCheck, GateDecision, GateInputs, GatePolicy, decide_promotion
from driftline.loop.rollout import (
    RolloutPolicy,
    SloPolicy,
    SloVerdict,
    StageVerdict,
    VariantStats,
    canary_routes,
    check_slo,
    stage_verdict,
)
from driftline.loop.trigger import TriggerDecision, TriggerInputs, TriggerPolicy, decide_retrain

__all__ = [
    "GateCheck",
    "GateDecision",
    "GateInputs",
    "GatePolicy",
    "RolloutPolicy",
    "SloPolicy",
    "SloVerdict",
    "StageVerdict",
    "TriggerDecision",
    "TriggerInputs",
    "TriggerPolicy",
    "VariantStats",
    "canary_routes",
    "check_slo",
    "decide_promotion",
    "decide_retrain",
    "stage_verdict",
]
