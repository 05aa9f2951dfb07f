"""When to retrain: a pure function of what the monitor found.

Retrain when the monitor reports confirmed concept drift, critical data drift, or an estimated
accuracy drop beyond a threshold — and enough new labelled samples exist to learn from — and
the cooldown since the last retrain has passed. A forced retrain (``driftline retrain``)
skips the conditions but still says what it saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftline.errors import ConfigurationError

__all__ = ["TriggerDecision", "TriggerInputs", "TriggerPolicy", "decide_retrain"]


def _check(name: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigurationError(f"{name} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class TriggerPolicy:
    """Parameters
    ----------
    min_new_labels
        Labelled production samples needed since the drift began (default 500): fewer and a
        challenger would learn little and be judged on a tiny holdout.
    cooldown_seconds
        Least time between two retrains (default 12 h), persisted in the store.
    accuracy_drop
        Retrain when the label-free accuracy estimate falls this far below the champion's
        holdout accuracy (default 0.05, absolute).
    on_concept_drift, on_critical_data_drift, on_performance_drop
        Which conditions may trigger.
    retry_growth
        After a challenger the gate *rejected*, retry before the cooldown ends once the labelled
        samples since the drift began are at least this many times those the rejected one was
        trained on (default 2): a challenger that failed on too little of the new world gets a
        second chance on more of it, instead of waiting out a cooldown meant for successes.
        0 turns retries off.
    retry_seconds
        Least time between a rejected retrain and its retry (default 1 h).

    Example
    -------
    >>> policy = TriggerPolicy(cooldown_seconds=3600, retry_growth=2, retry_seconds=60)
    >>> rejected = dict(data_drift_severity="critical", seconds_since_last_retrain=300,
    ...                 last_retrain_rejected=True, labels_at_last_retrain=600)
    >>> decide_retrain(TriggerInputs(new_labeled_samples=900, **rejected), policy).retrain
    False
    >>> d = decide_retrain(TriggerInputs(new_labeled_samples=1_200, **rejected), policy)
    >>> d.retrain, d.reasons[-1]
    (True, 'retry after a rejected challenger: 1200 labelled samples >= 2 x 600')
    """

    min_new_labels: int = 500
    cooldown_seconds: float = 12 * 3600.0
    accuracy_drop: float = 0.05
    on_concept_drift: bool = True
    on_critical_data_drift: bool = True
    on_performance_drop: bool = True
    retry_growth: float = 2.0
    retry_seconds: float = 3600.0

    def __post_init__(self) -> None:
        _check("min_new_labels", self.min_new_labels, 1)
        _check("cooldown_seconds", self.cooldown_seconds, 0)
        _check("accuracy_drop", self.accuracy_drop, 0, 1)
        _check("retry_growth", self.retry_growth, 0)
        _check("retry_seconds", self.retry_seconds, 0)


@dataclass(frozen=True)
class TriggerInputs:
    concept_drift_confirmed: bool = False
    data_drift_severity: str = "none"
    estimated_accuracy: float | None = None
    reference_accuracy: float | None = None
    new_labeled_samples: int = 0
    seconds_since_last_retrain: float | None = None
    #: The gate rejected the last retrain's challenger, trained on this many labelled samples.
    last_retrain_rejected: bool = False
    labels_at_last_retrain: int | None = None
    forced: bool = False


@dataclass(frozen=True)
class TriggerDecision:
    retrain: bool
    triggers: tuple[str, ...]
    reasons: tuple[str, ...]


def decide_retrain(
    inputs: TriggerInputs, policy: TriggerPolicy = TriggerPolicy()
) -> TriggerDecision:
    """Whether to retrain now, which conditions fired, and why (or why not).

    Example
    -------
    >>> d = decide_retrain(TriggerInputs(concept_drift_confirmed=True, new_labeled_samples=800))
    >>> d.retrain, d.triggers
    (True, ('concept_drift',))
    >>> d.reasons
    ('concept drift confirmed', '800 new labelled samples >= 500', 'no retrain yet')
    >>> d = decide_retrain(TriggerInputs(data_drift_severity="critical", new_labeled_samples=40))
    >>> d.retrain, d.reasons[1]
    (False, 'only 40 new labelled samples (< 500)')
    """
    triggers: list[str] = []
    reasons: list[str] = []
    if policy.on_concept_drift and inputs.concept_drift_confirmed:
        triggers.append("concept_drift")
        reasons.append("concept drift confirmed")
    if policy.on_critical_data_drift and inputs.data_drift_severity == "critical":
        triggers.append("data_drift")
        reasons.append("critical data drift")
    if (
        policy.on_performance_drop
        and inputs.estimated_accuracy is not None
        and inputs.reference_accuracy is not None
    ):
        drop = inputs.reference_accuracy - inputs.estimated_accuracy
        if drop > policy.accuracy_drop:
            triggers.append("performance")
            reasons.append(
                f"estimated accuracy {inputs.estimated_accuracy:.3f} is {drop:.3f} below "
                f"the reference {inputs.reference_accuracy:.3f} (> {policy.accuracy_drop})"
            )
    if inputs.forced:
        return TriggerDecision(
            retrain=True, triggers=("manual", *triggers), reasons=("forced", *reasons)
        )
    if not triggers:
        return TriggerDecision(False, (), ("no trigger condition met",))
    blocked = False
    if inputs.new_labeled_samples >= policy.min_new_labels:
        reasons.append(
            f"{inputs.new_labeled_samples} new labelled samples >= {policy.min_new_labels}"
        )
    else:
        blocked = True
        reasons.append(
            f"only {inputs.new_labeled_samples} new labelled samples (< {policy.min_new_labels})"
        )
    since = inputs.seconds_since_last_retrain
    if since is None:
        reasons.append("no retrain yet")
    elif since >= policy.cooldown_seconds:
        reasons.append(f"cooldown passed ({since:.0f}s >= {policy.cooldown_seconds:.0f}s)")
    elif _retry_allowed(inputs, policy, since):
        growth = f"{policy.retry_growth:g}"
        reasons.append(
            f"retry after a rejected challenger: {inputs.new_labeled_samples} labelled samples "
            f">= {growth} x {inputs.labels_at_last_retrain}"
        )
    else:
        blocked = True
        reasons.append(f"in cooldown ({since:.0f}s < {policy.cooldown_seconds:.0f}s)")
    return TriggerDecision(retrain=not blocked, triggers=tuple(triggers), reasons=tuple(reasons))


def _retry_allowed(inputs: TriggerInputs, policy: TriggerPolicy, since: float) -> bool:
    """A rejected challenger may be retried within the cooldown once the data has grown."""
    if not inputs.last_retrain_rejected or policy.retry_growth <= 0:
        return False
    if inputs.labels_at_last_retrain is None or since < policy.retry_seconds:
        return False
    return inputs.new_labeled_samples >= policy.retry_growth * inputs.labels_at_last_retrain
