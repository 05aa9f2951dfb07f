"""Pure-function tests of the loop's decisions: trigger, gate, SLO guard, stage verdicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import ConfigurationError
from driftline.loop import (
    GateInputs,
    GatePolicy,
    RolloutPolicy,
    SloPolicy,
    TriggerInputs,
    TriggerPolicy,
    VariantStats,
    canary_routes,
    check_slo,
    decide_promotion,
    decide_retrain,
    stage_verdict,
)

# --- trigger -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "retrain", "triggers"),
    [
        (TriggerInputs(), False, ()),
        (
            TriggerInputs(concept_drift_confirmed=True, new_labeled_samples=600),
            True,
            ("concept_drift",),
        ),
        (TriggerInputs(data_drift_severity="warning", new_labeled_samples=600), False, ()),
        (
            TriggerInputs(data_drift_severity="critical", new_labeled_samples=600),
            True,
            ("data_drift",),
        ),
        (
            TriggerInputs(
                estimated_accuracy=0.70, reference_accuracy=0.80, new_labeled_samples=900
            ),
            True,
            ("performance",),
        ),
        (
            TriggerInputs(
                estimated_accuracy=0.77, reference_accuracy=0.80, new_labeled_samples=900
            ),
            False,
            (),
        ),
        (
            TriggerInputs(concept_drift_confirmed=True, new_labeled_samples=499),
            False,
            ("concept_drift",),
        ),
        (
            TriggerInputs(
                concept_drift_confirmed=True, new_labeled_samples=600, seconds_since_last_retrain=60
            ),
            False,
            ("concept_drift",),
        ),
        (
            TriggerInputs(
                concept_drift_confirmed=True,
                new_labeled_samples=600,
                seconds_since_last_retrain=13 * 3600,
            ),
            True,
            ("concept_drift",),
        ),
        (TriggerInputs(forced=True), True, ("manual",)),
    ],
)
def test_trigger_policy(inputs: TriggerInputs, retrain: bool, triggers: tuple[str, ...]) -> None:
    decision = decide_retrain(inputs)
    assert decision.retrain is retrain
    assert decision.triggers == triggers
    assert decision.reasons  # always says why


def test_trigger_conditions_can_be_switched_off() -> None:
    policy = TriggerPolicy(on_concept_drift=False)
    inputs = TriggerInputs(concept_drift_confirmed=True, new_labeled_samples=10_000)
    assert not decide_retrain(inputs, policy).retrain


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_new_labels": 0}, "min_new_labels must be >= 1, got 0"),
        ({"cooldown_seconds": -1}, "cooldown_seconds must be >= 0, got -1"),
        ({"accuracy_drop": 2}, r"accuracy_drop must be \[0, 1\], got 2"),
    ],
)
def test_trigger_policy_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TriggerPolicy(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    labels=st.integers(0, 5_000),
    since=st.none() | st.floats(0, 1e6),
    concept=st.booleans(),
)
def test_more_labels_or_more_time_never_blocks_a_retrain(
    labels: int, since: float | None, concept: bool
) -> None:
    inputs = TriggerInputs(
        concept_drift_confirmed=concept,
        new_labeled_samples=labels,
        seconds_since_last_retrain=since,
    )
    if decide_retrain(inputs).retrain:
        more = dataclasses.replace(
            inputs,
            new_labeled_samples=labels + 100,
            seconds_since_last_retrain=None if since is None else since + 100,
        )
        assert decide_retrain(more).retrain


# --- gate ----------------------------------------------------------------------------------

CHAMP = {"f1_macro": 0.60, "cohen_kappa": 0.30}
BASE = {"f1_macro": 0.75, "cohen_kappa": 0.50}


def test_gate_promotes_a_better_challenger_with_every_number() -> None:
    d = decide_promotion(
        GateInputs(
            champion=CHAMP,
            challenger={"f1_macro": 0.70, "cohen_kappa": 0.42},
            champion_base=BASE,
            challenger_base={"f1_macro": 0.74, "cohen_kappa": 0.49},
            champion_latency_ms=0.2,
            challenger_latency_ms=0.25,
        )
    )
    assert d.promote
    assert {c.name for c in d.checks} == {
        "beats:f1_macro",
        "beats:cohen_kappa",
        "no_forgetting:f1_macro",
        "no_forgetting:cohen_kappa",
        "schema",
        "latency",
    }
    assert d.metrics["challenger"]["f1_macro"] == 0.70


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"challenger": {"f1_macro": 0.60, "cohen_kappa": 0.5}}, "beats:f1_macro"),
        ({"challenger_base": {"f1_macro": 0.70, "cohen_kappa": 0.49}}, "no_forgetting:f1_macro"),
        ({"schema_problems": ("feature names differ",)}, "schema"),
        ({"challenger_latency_ms": 0.9}, "latency"),
    ],
)
def test_gate_rejects_with_the_failing_check(change: dict[str, object], failing: str) -> None:
    good = GateInputs(
        champion=CHAMP,
        challenger={"f1_macro": 0.70, "cohen_kappa": 0.42},
        champion_base=BASE,
        challenger_base=BASE,
        champion_latency_ms=0.2,
        challenger_latency_ms=0.2,
    )
    d = decide_promotion(dataclasses.replace(good, **change))  # type: ignore[arg-type]
    assert not d.promote
    assert [c.name for c in d.checks if not c.passed] == [failing]


def test_gate_does_not_judge_the_latency_ratio_below_the_floor() -> None:
    """0.15 ms vs 0.06 ms per row is 2.5x, but both are far below a millisecond: timings at
    that scale are noise, so only the absolute budget applies."""
    inputs = GateInputs(
        champion=CHAMP,
        challenger={"f1_macro": 0.70, "cohen_kappa": 0.42},
        champion_latency_ms=0.06,
        challenger_latency_ms=0.15,
    )
    assert decide_promotion(inputs).promote
    slow = dataclasses.replace(inputs, challenger_latency_ms=0.3)
    assert not decide_promotion(slow).promote
    assert not decide_promotion(inputs, GatePolicy(latency_floor_ms=0.1)).promote


def test_gate_minimum_gain() -> None:
    policy = GatePolicy(min_gains=(0.05, 0.0))
    d = decide_promotion(
        GateInputs(champion=CHAMP, challenger={"f1_macro": 0.63, "cohen_kappa": 0.4}), policy
    )
    assert not d.promote and "0.6300 does not beat champion 0.6000 + 0.0500" in d.reason


def test_gate_policy_validation() -> None:
    with pytest.raises(
        ConfigurationError, match=r"min_gains must have one value per metric \(2\), got 1"
    ):
        GatePolicy(min_gains=(0.1,))
    with pytest.raises(ConfigurationError, match=r"max_latency_ratio must be >= 1, got 0\.5"):
        GatePolicy(max_latency_ratio=0.5)


@settings(max_examples=100, deadline=None)
@given(f1=st.floats(0, 1), kappa=st.floats(-1, 1), f1c=st.floats(0, 1), kappac=st.floats(-1, 1))
def test_gate_never_promotes_a_challenger_that_is_not_better(
    f1: float, kappa: float, f1c: float, kappac: float
) -> None:
    d = decide_promotion(
        GateInputs(
            champion={"f1_macro": f1, "cohen_kappa": kappa},
            challenger={"f1_macro": f1c, "cohen_kappa": kappac},
        )
    )
    assert d.promote == (f1c > f1 and kappac > kappa)


# --- SLO guard and stages ------------------------------------------------------------------

BASELINE = VariantStats(requests=2_000, errors=2, p95_latency_ms=10.0, labeled=500, accuracy=0.80)


def test_slo_holds_for_a_healthy_candidate() -> None:
    ok = VariantStats(requests=400, errors=1, p95_latency_ms=12.0, labeled=100, accuracy=0.81)
    verdict = check_slo(ok, BASELINE)
    assert not verdict.breach
    assert verdict.judged == ("error_rate", "latency", "realized_accuracy")


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (VariantStats(requests=400, errors=20, p95_latency_ms=10.0), "error rate 0.0500"),
        (VariantStats(requests=400, p95_latency_ms=45.0), "p95 latency 45.0 ms > 30.0 ms"),
        (
            VariantStats(requests=400, p95_latency_ms=10.0, labeled=300, accuracy=0.70),
            "realized accuracy 0.7000",
        ),
    ],
)
def test_slo_breaches_are_explained(candidate: VariantStats, reason: str) -> None:
    verdict = check_slo(candidate, BASELINE)
    assert verdict.breach and reason in verdict.reasons[0]


def test_slo_accuracy_breach_needs_more_than_sampling_noise() -> None:
    """Candidate and baseline equally good: the sampled accuracies differ by chance, and the
    guard must not call that a breach more than about 2% of the time (z = 2, one-sided)."""
    rng = np.random.default_rng(0)
    trials, breaches = 2_000, 0
    for _ in range(trials):
        n_c, n_b = 120, 400
        cand = VariantStats(requests=400, labeled=n_c, accuracy=rng.binomial(n_c, 0.8) / n_c)
        base = VariantStats(requests=2_000, labeled=n_b, accuracy=rng.binomial(n_b, 0.8) / n_b)
        breaches += check_slo(cand, base).breach
    assert breaches / trials < 0.03
    # … while a real drop of 0.15 on the same sample sizes is caught most of the time.
    caught = sum(
        check_slo(
            VariantStats(requests=400, labeled=120, accuracy=rng.binomial(120, 0.65) / 120),
            VariantStats(requests=2_000, labeled=400, accuracy=rng.binomial(400, 0.8) / 400),
        ).breach
        for _ in range(500)
    )
    assert caught / 500 > 0.75


def test_slo_falls_back_to_estimated_accuracy_without_labels() -> None:
    base = dataclasses.replace(BASELINE, estimated_accuracy=0.80)
    cand = VariantStats(
        requests=400, p95_latency_ms=9.0, labeled=3, accuracy=0.0, estimated_accuracy=0.70
    )
    verdict = check_slo(cand, base)
    assert verdict.breach and "estimated accuracy 0.7000" in verdict.reasons[0]


def test_small_samples_are_not_judged() -> None:
    verdict = check_slo(VariantStats(requests=10, errors=5, p95_latency_ms=999.0), BASELINE)
    assert not verdict.breach and verdict.judged == ()
    with pytest.raises(ConfigurationError, match=r"max_error_rate must be in \[0, 1\], got 2"):
        SloPolicy(max_error_rate=2)


def test_stage_machine() -> None:
    healthy = VariantStats(requests=350, p95_latency_ms=9.0)
    few = VariantStats(requests=20, p95_latency_ms=9.0)
    broken = VariantStats(requests=350, errors=50, p95_latency_ms=9.0)
    v = stage_verdict("shadow", candidate=healthy, baseline=BASELINE, elapsed_seconds=10)
    assert (v.action, v.next_stage) == ("advance", "canary")
    v = stage_verdict("shadow", candidate=few, baseline=BASELINE, elapsed_seconds=10)
    assert (v.action, v.next_stage) == ("wait", "shadow")
    v = stage_verdict("shadow", candidate=few, baseline=BASELINE, elapsed_seconds=4_000)
    assert v.action == "abort" and "budget" in v.reasons[0]
    v = stage_verdict("canary", candidate=broken, baseline=BASELINE, elapsed_seconds=10)
    assert (v.action, v.next_stage) == ("abort", "aborted")
    v = stage_verdict("canary", candidate=healthy, baseline=BASELINE, elapsed_seconds=10)
    assert (v.action, v.next_stage) == ("advance", "watch")
    v = stage_verdict("watch", candidate=broken, baseline=BASELINE, elapsed_seconds=10)
    assert (v.action, v.next_stage) == ("rollback", "rolled_back")
    v = stage_verdict("watch", candidate=healthy, baseline=BASELINE, elapsed_seconds=10)
    assert v.action == "wait"
    v = stage_verdict("watch", candidate=healthy, baseline=BASELINE, elapsed_seconds=700)
    assert (v.action, v.next_stage) == ("advance", "done")
    assert (
        stage_verdict("done", candidate=healthy, baseline=BASELINE, elapsed_seconds=0).action
        == "wait"
    )
    with pytest.raises(ConfigurationError, match=r"canary_share must be in \(0, 1\), got 1.5"):
        RolloutPolicy(canary_share=1.5)


@settings(max_examples=50, deadline=None)
@given(share=st.floats(0.05, 0.95), keys=st.lists(st.text(min_size=1), min_size=1, max_size=30))
def test_canary_routing_is_sticky_and_monotone_in_share(share: float, keys: list[str]) -> None:
    for key in keys:
        first = canary_routes(key, share)
        assert canary_routes(key, share) == first
        if first:  # a key in the canary stays there when the share grows
            assert canary_routes(key, min(1.0, share + 0.04))


def test_a_rejected_challenger_is_retried_once_the_data_has_grown() -> None:
    """The demo's failure: the first challenger, trained on little drifted data, was rejected
    and a long cooldown blocked any retry. A retry comes when the labels have doubled."""
    policy = TriggerPolicy(cooldown_seconds=10_000, retry_growth=2.0, retry_seconds=30)
    base = TriggerInputs(
        data_drift_severity="critical",
        seconds_since_last_retrain=60,
        last_retrain_rejected=True,
        labels_at_last_retrain=700,
    )
    assert not decide_retrain(dataclasses.replace(base, new_labeled_samples=1_399), policy).retrain
    retry = decide_retrain(dataclasses.replace(base, new_labeled_samples=1_400), policy)
    assert retry.retrain
    assert "retry after a rejected challenger" in retry.reasons[-1]
    # Not before retry_seconds, not after a *passed* gate, not when retries are off.
    early = dataclasses.replace(base, new_labeled_samples=5_000, seconds_since_last_retrain=10)
    assert not decide_retrain(early, policy).retrain
    passed = dataclasses.replace(base, new_labeled_samples=5_000, last_retrain_rejected=False)
    assert not decide_retrain(passed, policy).retrain
    off = TriggerPolicy(cooldown_seconds=10_000, retry_growth=0)
    assert not decide_retrain(dataclasses.replace(base, new_labeled_samples=5_000), off).retrain
    # Without a trigger condition nothing retries, whatever the labels.
    calm = dataclasses.replace(base, data_drift_severity="none", new_labeled_samples=9_000)
    assert not decide_retrain(calm, policy).retrain


@settings(max_examples=100, deadline=None)
@given(
    labels=st.integers(0, 5_000),
    at_last=st.integers(1, 2_000),
    since=st.floats(0, 1e5),
    growth=st.floats(0, 5),
)
def test_retry_is_monotone_in_labels_and_time(
    labels: int, at_last: int, since: float, growth: float
) -> None:
    policy = TriggerPolicy(cooldown_seconds=1e6, retry_growth=growth, retry_seconds=100)
    inputs = TriggerInputs(
        concept_drift_confirmed=True,
        new_labeled_samples=labels,
        seconds_since_last_retrain=since,
        last_retrain_rejected=True,
        labels_at_last_retrain=at_last,
    )
    if decide_retrain(inputs, policy).retrain:
        more = dataclasses.replace(
            inputs, new_labeled_samples=labels + 50, seconds_since_last_retrain=since + 50
        )
        assert decide_retrain(more, policy).retrain
