"""Rollout of a gated challenger: shadow → canary → promotion → watch. Pure decisions.

* **shadow**: the challenger sees a copy of live traffic; its answers are logged, never
  returned. Exit when enough samples are in and the SLO holds; abort on an SLO breach or when
  the time budget runs out first.
* **canary**: the challenger answers a share of traffic, chosen sticky per request key.
  Promote when enough samples are in and the SLO holds; withdraw on a breach.
* **watch**: after promotion, the new champion is watched against the previous one's numbers;
  a breach rolls the alias back. The rollout ends after the watch period.

The SLO guard (:func:`check_slo`) compares the candidate with a baseline: p95 latency, error
rate, and accuracy — realized when both have enough labels, else the label-free estimate.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

from driftline.errors import ConfigurationError

__all__ = [
    "RolloutPolicy",
    "SloPolicy",
    "SloVerdict",
    "Stage",
    "StageVerdict",
    "VariantStats",
    "canary_routes",
    "check_slo",
    "stage_verdict",
]

Stage = Literal["shadow", "canary", "watch", "done", "aborted", "rolled_back"]
Action = Literal["wait", "advance", "abort", "rollback"]


def canary_routes(key: str, share: float) -> bool:
    """Whether the request with this key goes to the canary: a stable hash, so the same key
    (a user, a flow) always lands on the same variant while the share is unchanged.

    >>> canary_routes("user-1", 0.0), canary_routes("user-1", 1.0)
    (False, True)
    >>> sum(canary_routes(f"k{i}", 0.2) for i in range(10_000))
    1993
    """
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


@dataclass(frozen=True)
class VariantStats:
    """What one variant did in a stage (merged across workers)."""

    requests: int = 0
    errors: int = 0
    p95_latency_ms: float | None = None
    labeled: int = 0
    accuracy: float | None = None
    estimated_accuracy: float | None = None
    agreement: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class SloPolicy:
    """Parameters
    ----------
    max_error_rate
        Highest acceptable share of failed requests (default 0.01).
    max_p95_latency_ms
        Absolute p95 latency limit (default 250 ms) …
    max_latency_ratio
        … and at most this multiple of the baseline's p95 (default 3.0).
    accuracy_tolerance
        How far below the baseline the candidate's accuracy may fall (default 0.02).
    min_requests
        Fewer requests than this: latency and error rate are not judged yet (default 50).
    min_labels
        Fewer labels than this: realized accuracy is not judged (default 50).
    noise_z
        Accuracy is compared beyond sampling noise: a breach needs the candidate to fall more
        than ``accuracy_tolerance + noise_z * SE`` below the baseline, where SE is the
        standard error of the difference of two proportions (default 2.0, about a 2% chance
        that noise alone looks like a breach).
    """

    max_error_rate: float = 0.01
    max_p95_latency_ms: float = 250.0
    max_latency_ratio: float = 3.0
    accuracy_tolerance: float = 0.02
    min_requests: int = 50
    min_labels: int = 50
    noise_z: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate <= 1:
            raise ConfigurationError(f"max_error_rate must be in [0, 1], got {self.max_error_rate}")
        if self.max_p95_latency_ms <= 0:
            raise ConfigurationError(
                f"max_p95_latency_ms must be > 0, got {self.max_p95_latency_ms}"
            )
        if self.max_latency_ratio < 1:
            raise ConfigurationError(
                f"max_latency_ratio must be >= 1, got {self.max_latency_ratio}"
            )
        if not 0 <= self.accuracy_tolerance <= 1:
            raise ConfigurationError(
                f"accuracy_tolerance must be in [0, 1], got {self.accuracy_tolerance}"
            )
        if self.noise_z < 0:
            raise ConfigurationError(f"noise_z must be >= 0, got {self.noise_z}")
        if self.min_requests < 1 or self.min_labels < 1:
            raise ConfigurationError(
                f"min_requests and min_labels must be >= 1, got "
                f"{self.min_requests} and {self.min_labels}"
            )


@dataclass(frozen=True)
class SloVerdict:
    breach: bool
    reasons: tuple[str, ...]
    judged: tuple[str, ...] = field(default=())


def check_slo(
    candidate: VariantStats, baseline: VariantStats, policy: SloPolicy = SloPolicy()
) -> SloVerdict:
    """Does the candidate breach the SLO relative to the baseline?

    Example
    -------
    >>> base = VariantStats(requests=500, errors=0, p95_latency_ms=8.0, labeled=200, accuracy=0.8)
    >>> check_slo(VariantStats(requests=300, errors=9, p95_latency_ms=9.0), base).reasons
    ('error rate 0.0300 > 0.01',)
    >>> worse = VariantStats(requests=300, labeled=120, accuracy=0.60, p95_latency_ms=9.0)
    >>> check_slo(worse, base).reasons
    ('realized accuracy 0.6000 < baseline 0.8000 - 0.02 - 2.0 SE (SE 0.0529)',)
    >>> noisy = VariantStats(requests=300, labeled=120, accuracy=0.75, p95_latency_ms=9.0)
    >>> check_slo(noisy, base).breach  # 0.05 below, but within the noise of 120 labels
    False
    """
    reasons: list[str] = []
    judged: list[str] = []
    if candidate.requests >= policy.min_requests:
        judged.append("error_rate")
        if candidate.error_rate > policy.max_error_rate:
            reasons.append(f"error rate {candidate.error_rate:.4f} > {policy.max_error_rate}")
        if candidate.p95_latency_ms is not None:
            judged.append("latency")
            limit = policy.max_p95_latency_ms
            if baseline.p95_latency_ms is not None:
                limit = min(limit, max(baseline.p95_latency_ms, 1.0) * policy.max_latency_ratio)
            if candidate.p95_latency_ms > limit:
                reasons.append(f"p95 latency {candidate.p95_latency_ms:.1f} ms > {limit:.1f} ms")
    realized = (
        candidate.accuracy is not None
        and baseline.accuracy is not None
        and candidate.labeled >= policy.min_labels
        and baseline.labeled >= policy.min_labels
    )
    if realized:
        assert candidate.accuracy is not None and baseline.accuracy is not None
        judged.append("realized_accuracy")
        se = _difference_se(
            candidate.accuracy, candidate.labeled, baseline.accuracy, baseline.labeled
        )
        if candidate.accuracy < baseline.accuracy - policy.accuracy_tolerance - policy.noise_z * se:
            reasons.append(
                f"realized accuracy {candidate.accuracy:.4f} < baseline "
                f"{baseline.accuracy:.4f} - {policy.accuracy_tolerance} - {policy.noise_z} SE "
                f"(SE {se:.4f})"
            )
    elif (
        candidate.estimated_accuracy is not None
        and baseline.estimated_accuracy is not None
        and candidate.requests >= policy.min_requests
    ):
        judged.append("estimated_accuracy")
        se = _difference_se(
            candidate.estimated_accuracy,
            candidate.requests,
            baseline.estimated_accuracy,
            max(baseline.requests, 1),
        )
        limit = baseline.estimated_accuracy - policy.accuracy_tolerance - policy.noise_z * se
        if candidate.estimated_accuracy < limit:
            reasons.append(
                f"estimated accuracy {candidate.estimated_accuracy:.4f} < baseline "
                f"{baseline.estimated_accuracy:.4f} - {policy.accuracy_tolerance} - "
                f"{policy.noise_z} SE (SE {se:.4f})"
            )
    return SloVerdict(bool(reasons), tuple(reasons), tuple(judged))


def _difference_se(p1: float, n1: int, p2: float, n2: int) -> float:
    """Standard error of the difference of two proportions (each clipped into [0, 1]).

    >>> round(_difference_se(0.8, 400, 0.8, 400), 4)
    0.0283
    """
    p1, p2 = min(max(p1, 0.0), 1.0), min(max(p2, 0.0), 1.0)
    return math.sqrt(p1 * (1 - p1) / max(n1, 1) + p2 * (1 - p2) / max(n2, 1))


@dataclass(frozen=True)
class RolloutPolicy:
    """Entry/exit criteria and budgets of each stage.

    Parameters
    ----------
    shadow_min_samples, canary_min_samples, watch_min_samples
        Requests the candidate must have seen before its stage may end.
    shadow_max_seconds, canary_max_seconds
        Time budget of a stage; running out before enough samples aborts the rollout.
    watch_seconds
        How long the new champion is watched after promotion.
    canary_share
        Share of traffic the canary answers.
    slo
        The SLO guard's policy.
    """

    shadow_min_samples: int = 300
    shadow_max_seconds: float = 3_600.0
    canary_share: float = 0.2
    canary_min_samples: int = 300
    canary_max_seconds: float = 3_600.0
    watch_min_samples: int = 300
    watch_seconds: float = 600.0
    slo: SloPolicy = field(default_factory=SloPolicy)

    def __post_init__(self) -> None:
        if not 0 < self.canary_share < 1:
            raise ConfigurationError(f"canary_share must be in (0, 1), got {self.canary_share}")
        for name in ("shadow_min_samples", "canary_min_samples", "watch_min_samples"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("shadow_max_seconds", "canary_max_seconds", "watch_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class StageVerdict:
    action: Action
    next_stage: Stage
    reasons: tuple[str, ...]


_NEXT: dict[str, Stage] = {"shadow": "canary", "canary": "watch", "watch": "done"}


def stage_verdict(
    stage: Stage,
    *,
    candidate: VariantStats,
    baseline: VariantStats,
    elapsed_seconds: float,
    policy: RolloutPolicy = RolloutPolicy(),
) -> StageVerdict:
    """What to do now in ``stage``: wait, advance, abort (shadow, canary) or roll back (watch).

    Example
    -------
    >>> base = VariantStats(requests=1000, p95_latency_ms=5.0)
    >>> stage_verdict("shadow", candidate=VariantStats(requests=400, p95_latency_ms=6.0),
    ...               baseline=base, elapsed_seconds=30).action
    'advance'
    >>> stage_verdict("canary", candidate=VariantStats(requests=100, errors=5),
    ...               baseline=base, elapsed_seconds=30).reasons
    ('SLO breach: error rate 0.0500 > 0.01',)
    """
    if stage not in _NEXT:
        return StageVerdict("wait", stage, (f"stage {stage} is final",))
    slo = check_slo(candidate, baseline, policy.slo)
    if slo.breach:
        breach = tuple(f"SLO breach: {r}" for r in slo.reasons)
        if stage == "watch":
            return StageVerdict("rollback", "rolled_back", breach)
        return StageVerdict("abort", "aborted", breach)
    needed = {
        "shadow": policy.shadow_min_samples,
        "canary": policy.canary_min_samples,
        "watch": policy.watch_min_samples,
    }[stage]
    enough = candidate.requests >= needed
    if stage == "watch":
        if elapsed_seconds >= policy.watch_seconds and enough:
            return StageVerdict(
                "advance",
                "done",
                (f"watched {elapsed_seconds:.0f}s and {candidate.requests} requests, SLO held",),
            )
        return StageVerdict(
            "wait", "watch", (f"watching: {candidate.requests}/{needed} requests, SLO holds",)
        )
    budget = policy.shadow_max_seconds if stage == "shadow" else policy.canary_max_seconds
    if enough:
        return StageVerdict(
            "advance",
            _NEXT[stage],
            (f"{candidate.requests} requests >= {needed}, SLO held ({', '.join(slo.judged)})",),
        )
    if elapsed_seconds > budget:
        return StageVerdict(
            "abort",
            "aborted",
            (
                f"{stage} budget of {budget:.0f}s ran out with {candidate.requests}/{needed} "
                "requests",
            ),
        )
    return StageVerdict("wait", stage, (f"{candidate.requests}/{needed} requests",))
