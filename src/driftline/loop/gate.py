"""The promotion gate: may the challenger replace the champion? A pure function.

Champion and challenger are scored on the same holdouts. The challenger must beat the champion
on every gate metric (F1 and Cohen's kappa by default) by at least the minimum gain on the
holdout of recent (drifted) data, must not lose more than a tolerance on a holdout drawn from
the base training data (no forgetting), must take the champion's requests (schema
compatible), and must answer within the latency budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.errors import ConfigurationError

__all__ = ["GateCheck", "GateDecision", "GateInputs", "GatePolicy", "decide_promotion"]


@dataclass(frozen=True)
class GatePolicy:
    """Parameters
    ----------
    metrics
        Metrics the challenger must beat the champion on (higher is better).
    min_gains
        Least improvement per metric on the recent holdout (same order as ``metrics``).
    forgetting_tolerance
        Most a metric may fall on the base holdout (absolute, default 0.03).
    max_latency_ratio
        Challenger latency at most this multiple of the champion's (default 2.0) …
    max_latency_ms
        … and at most this many milliseconds per row (default 50).
    latency_floor_ms
        Below this many milliseconds per row the ratio is not judged (default 0.25): at that
        scale timings are noise, and a fraction of a millisecond costs no one anything.
    """

    metrics: tuple[str, ...] = ("f1_macro", "cohen_kappa")
    min_gains: tuple[float, ...] = (0.0, 0.0)
    forgetting_tolerance: float = 0.03
    max_latency_ratio: float = 2.0
    max_latency_ms: float = 50.0
    latency_floor_ms: float = 0.25

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ConfigurationError("metrics must name at least one metric, got ()")
        if len(self.min_gains) != len(self.metrics):
            raise ConfigurationError(
                f"min_gains must have one value per metric ({len(self.metrics)}), "
                f"got {len(self.min_gains)}"
            )
        if any(g < 0 or g > 1 for g in self.min_gains):
            raise ConfigurationError(f"min_gains must be in [0, 1], got {self.min_gains}")
        if not 0 <= self.forgetting_tolerance <= 1:
            raise ConfigurationError(
                f"forgetting_tolerance must be in [0, 1], got {self.forgetting_tolerance}"
            )
        if self.max_latency_ratio < 1:
            raise ConfigurationError(
                f"max_latency_ratio must be >= 1, got {self.max_latency_ratio}"
            )
        if self.max_latency_ms <= 0:
            raise ConfigurationError(f"max_latency_ms must be > 0, got {self.max_latency_ms}")


@dataclass(frozen=True)
class GateInputs:
    """Every number the gate looks at."""

    champion: Mapping[str, float | None]
    challenger: Mapping[str, float | None]
    champion_base: Mapping[str, float | None] = field(default_factory=dict)
    challenger_base: Mapping[str, float | None] = field(default_factory=dict)
    schema_problems: tuple[str, ...] = ()
    champion_latency_ms: float | None = None
    challenger_latency_ms: float | None = None


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    checks: tuple[GateCheck, ...]
    metrics: dict[str, Any]


def decide_promotion(inputs: GateInputs, policy: GatePolicy = GatePolicy()) -> GateDecision:
    """Promote or reject, with every number and reason.

    Example
    -------
    >>> d = decide_promotion(GateInputs(
    ...     champion={"f1_macro": 0.61, "cohen_kappa": 0.30},
    ...     challenger={"f1_macro": 0.72, "cohen_kappa": 0.44},
    ...     champion_base={"f1_macro": 0.74, "cohen_kappa": 0.48},
    ...     challenger_base={"f1_macro": 0.73, "cohen_kappa": 0.47},
    ... ))
    >>> d.promote, d.reason
    (True, 'challenger beats champion on f1_macro, cohen_kappa without forgetting')
    >>> d = decide_promotion(GateInputs(champion={"f1_macro": 0.7, "cohen_kappa": 0.4},
    ...                                 challenger={"f1_macro": 0.69, "cohen_kappa": 0.5}))
    >>> d.promote, d.reason
    (False, 'f1_macro: challenger 0.6900 does not beat champion 0.7000 + 0.0000')
    """
    checks: list[GateCheck] = []
    for metric, gain in zip(policy.metrics, policy.min_gains, strict=True):
        old, new = inputs.champion.get(metric), inputs.challenger.get(metric)
        if old is None or new is None:
            checks.append(GateCheck(f"beats:{metric}", False, f"{metric}: missing value"))
            continue
        passed = new > old + gain if gain == 0 else new >= old + gain
        verb = "beats" if passed else "does not beat"
        checks.append(
            GateCheck(
                f"beats:{metric}",
                passed,
                f"{metric}: challenger {new:.4f} {verb} champion {old:.4f} + {gain:.4f}",
            )
        )
    if inputs.champion_base and inputs.challenger_base:
        for metric in policy.metrics:
            old, new = inputs.champion_base.get(metric), inputs.challenger_base.get(metric)
            if old is None or new is None:
                continue
            loss = old - new
            passed = loss <= policy.forgetting_tolerance
            checks.append(
                GateCheck(
                    f"no_forgetting:{metric}",
                    passed,
                    f"{metric} on base holdout: challenger {new:.4f} vs champion {old:.4f} "
                    f"(loss {loss:+.4f}, tolerance {policy.forgetting_tolerance})",
                )
            )
    checks.append(
        GateCheck(
            "schema",
            not inputs.schema_problems,
            "schema compatible"
            if not inputs.schema_problems
            else "; ".join(inputs.schema_problems),
        )
    )
    if inputs.challenger_latency_ms is not None:
        limit = policy.max_latency_ms
        if inputs.champion_latency_ms is not None:
            limit = min(
                limit,
                max(policy.latency_floor_ms, inputs.champion_latency_ms * policy.max_latency_ratio),
            )
        passed = inputs.challenger_latency_ms <= limit
        checks.append(
            GateCheck(
                "latency",
                passed,
                f"challenger {inputs.challenger_latency_ms:.3f} ms/row vs budget {limit:.3f} ms",
            )
        )
    failed = [c for c in checks if not c.passed]
    metrics: dict[str, Any] = {
        "champion": dict(inputs.champion),
        "challenger": dict(inputs.challenger),
        "champion_base": dict(inputs.champion_base),
        "challenger_base": dict(inputs.challenger_base),
        "champion_latency_ms": inputs.champion_latency_ms,
        "challenger_latency_ms": inputs.challenger_latency_ms,
    }
    if failed:
        return GateDecision(False, "; ".join(c.detail for c in failed), tuple(checks), metrics)
    reason = f"challenger beats champion on {', '.join(policy.metrics)}"
    if inputs.champion_base and inputs.challenger_base:
        reason += " without forgetting"
    return GateDecision(True, reason, tuple(checks), metrics)
