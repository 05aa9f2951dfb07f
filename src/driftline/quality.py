"""Data-quality checks of a window against the reference, from profiles alone.

Drift asks "did the distribution move?"; quality asks "is this data broken?". Each check gives
one finding per feature (or one for the window) with a soft and a hard limit: crossing the soft
limit is a warning for people, crossing the hard limit means the window should not be trusted
(for example, not used to retrain). Checks:

``missing_rate``
    rise of the missing rate over the reference's;
``out_of_range``
    share of present numeric values outside the reference ``[min, max]``;
``unseen_categories``
    share of present categorical values the reference never had;
``rejected_requests``
    share of requests refused by schema validation (wrong type, unknown or missing field) --
    they never reach a profile, so the caller passes their number;
``constant``
    a feature that varied in the reference is constant in the window (a stuck sensor, a default
    filled in upstream); soft only.

Where chance alone produces some of a signal, a generous bound on that chance level is added
to the limit, so that a small reference does not make every window fail. A window of the
reference's own distribution falls outside the reference range with probability
``Gamma(2) / (n_ref + 1)`` (the two tails beyond the extremes of ``n_ref`` values); its 99th
percentile ``6.64 / (n_ref + 1)`` is added. It meets a value the reference never had with
probability about N1 / ``n_ref``, N1 the number of categories seen once (Good-Turing); three
Poisson standard deviations are added to N1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from driftline.errors import ConfigurationError
from driftline.profiles import CategoricalProfile, DatasetProfile, NumericProfile

__all__ = [
    "QualityCheck",
    "QualityFinding",
    "QualityPolicy",
    "QualityReport",
    "QualitySeverity",
    "check_quality",
]

QualityCheck = Literal[
    "missing_rate", "out_of_range", "unseen_categories", "rejected_requests", "constant"
]
QualitySeverity = Literal["hard", "soft"]

# 99th percentile of Gamma(2, 1): share of new values beyond a reference's extremes, times n + 1.
_RANGE_CHANCE_99 = 6.638


@dataclass(frozen=True)
class QualityPolicy:
    """Soft and hard limits of the data-quality checks (shares, between 0 and 1).

    Parameters
    ----------
    missing_soft, missing_hard
        Rise of the missing rate over the reference: 5 / 50 percentage points.
    out_of_range_soft, out_of_range_hard
        Share of present numeric values outside the reference range: 1% / 20% (plus chance).
    unseen_soft, unseen_hard
        Share of present categorical values not among the reference categories: 1% / 20% (plus
        chance).
    rejected_soft, rejected_hard
        Share of requests rejected by schema validation: 1% / 10%.
    min_rows
        Fewest rows in the window before its shares are checked (at least 1).

    Example
    -------
    >>> QualityPolicy().rejected_hard
    0.1
    >>> try:
    ...     QualityPolicy(unseen_soft=0.5, unseen_hard=0.3)
    ... except ConfigurationError as exc:
    ...     print(exc)
    unseen_hard must be in [0.5, 1.0], got 0.3

    References
    ----------
    Breck et al. (2019), "Data validation for machine learning", MLSys (hard and soft schema
    and distribution checks on serving data).
    """

    missing_soft: float = 0.05
    missing_hard: float = 0.5
    out_of_range_soft: float = 0.01
    out_of_range_hard: float = 0.2
    unseen_soft: float = 0.01
    unseen_hard: float = 0.2
    rejected_soft: float = 0.01
    rejected_hard: float = 0.1
    min_rows: int = 30

    def __post_init__(self) -> None:
        for check in ("missing", "out_of_range", "unseen", "rejected"):
            soft = getattr(self, f"{check}_soft")
            hard = getattr(self, f"{check}_hard")
            if not 0.0 <= soft <= 1.0 or math.isnan(soft):
                raise ConfigurationError(f"{check}_soft must be in [0.0, 1.0], got {soft!r}")
            if not soft <= hard <= 1.0 or math.isnan(hard):
                raise ConfigurationError(f"{check}_hard must be in [{soft}, 1.0], got {hard!r}")
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int):
            raise ConfigurationError(f"min_rows must be an integer >= 1, got {self.min_rows!r}")
        if self.min_rows < 1:
            raise ConfigurationError(f"min_rows must be in [1, inf), got {self.min_rows!r}")


@dataclass(frozen=True)
class QualityFinding:
    """One check on one feature (``feature`` None for window-wide checks).

    ``severity`` and ``threshold`` name the limit ``value`` was compared with: the hard one
    when it was crossed, else the soft one.
    """

    check: QualityCheck
    feature: str | None
    severity: QualitySeverity
    value: float
    threshold: float
    passed: bool
    message: str


@dataclass(frozen=True)
class QualityReport:
    """Every finding of a window's quality checks."""

    findings: tuple[QualityFinding, ...]
    n_rows: int
    rejected: int
    insufficient_data: bool

    @property
    def failures(self) -> tuple[QualityFinding, ...]:
        return tuple(f for f in self.findings if not f.passed)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def hard_failed(self) -> bool:
        return any(f.severity == "hard" for f in self.failures)

    @property
    def severity(self) -> Literal["none", "soft", "hard"]:
        if self.hard_failed:
            return "hard"
        return "soft" if self.failures else "none"


def _graded(
    check: QualityCheck,
    feature: str | None,
    value: float,
    soft: float,
    hard: float,
    what: str,
    detail: str = "",
) -> QualityFinding:
    where = f"'{feature}'" if feature is not None else "window"
    if value > hard:
        return QualityFinding(
            check, feature, "hard", value, hard, False,
            f"{where}: {what} {value:.2%} above the hard limit {hard:.2%}{detail}",
        )
    if value > soft:
        return QualityFinding(
            check, feature, "soft", value, soft, False,
            f"{where}: {what} {value:.2%} above the soft limit {soft:.2%}{detail}",
        )
    return QualityFinding(
        check, feature, "soft", value, soft, True, f"{where}: {what} {value:.2%} within limits"
    )


def check_quality(
    reference: DatasetProfile,
    current: DatasetProfile,
    *,
    rejected: int = 0,
    policy: QualityPolicy | None = None,
) -> QualityReport:
    """Data-quality findings of a window profile against the reference profile.

    Parameters
    ----------
    reference
        The reference profile.
    current
        A window profile on the same bins.
    rejected
        Requests of the window rejected by schema validation (they are not in ``current``).
    policy
        Limits; :class:`QualityPolicy` defaults when None.

    Example
    -------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from driftline.profiles import build_reference_profile
    >>> from driftline.schema import infer_schema
    >>> rng = np.random.default_rng(0)
    >>> train = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b"], 5000)})
    >>> reference = build_reference_profile(train, infer_schema(train, None))
    >>> window = reference.empty_like(seed=1)
    >>> x = rng.normal(size=500)
    >>> x[:100] = np.nan
    >>> window.add_frame(pd.DataFrame({"x": x, "c": ["a"] * 480 + ["zz"] * 20}))
    >>> report = check_quality(reference, window, rejected=2)
    >>> report.severity
    'soft'
    >>> for f in report.failures:
    ...     print(f.message)
    'x': missing rate rise 20.00% above the soft limit 5.00%
    'c': unseen categories 4.00% above the soft limit 1.00% (most frequent: 'zz')

    References
    ----------
    Breck et al. (2019), "Data validation for machine learning", MLSys. Good (1953), "The
    population frequencies of species and the estimation of population parameters",
    Biometrika 40 (chance of an unseen value).
    """
    policy = policy or QualityPolicy()
    if rejected < 0:
        raise ConfigurationError(f"rejected must be >= 0, got {rejected}")
    reference.check_compatible(current)
    findings: list[QualityFinding] = []
    requests = rejected + current.n_rows
    if requests >= policy.min_rows:
        findings.append(
            _graded(
                "rejected_requests",
                None,
                rejected / requests,
                policy.rejected_soft,
                policy.rejected_hard,
                "rejected requests",
            )
        )
    insufficient = current.n_rows < policy.min_rows
    if insufficient:
        return QualityReport(tuple(findings), current.n_rows, rejected, True)
    ref_features, cur_features = reference.features, current.features
    for name, ref in ref_features.items():
        cur = cur_features[name]
        if cur.total >= policy.min_rows:
            rise = max(0.0, cur.missing_rate - ref.missing_rate)
            findings.append(
                _graded(
                    "missing_rate",
                    name,
                    rise,
                    policy.missing_soft,
                    policy.missing_hard,
                    "missing rate rise",
                )
            )
        if cur.count < policy.min_rows:
            continue
        if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
            findings.extend(_numeric_findings(name, ref, cur, policy))
        elif isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
            findings.extend(_categorical_findings(name, ref, cur, policy))
    return QualityReport(tuple(findings), current.n_rows, rejected, False)


def _numeric_findings(
    name: str, ref: NumericProfile, cur: NumericProfile, policy: QualityPolicy
) -> list[QualityFinding]:
    findings: list[QualityFinding] = []
    if ref.reference_minimum is not None and ref.count:
        chance = _RANGE_CHANCE_99 / (ref.count + 1)
        share = (cur.below_reference + cur.above_reference) / cur.count
        findings.append(
            _graded(
                "out_of_range",
                name,
                share,
                min(1.0, policy.out_of_range_soft + chance),
                min(1.0, policy.out_of_range_hard + chance),
                f"values outside [{ref.reference_minimum:.4g}, {ref.reference_maximum:.4g}]",
            )
        )
    if ref.std > 0:
        constant = cur.minimum == cur.maximum
        findings.append(
            QualityFinding(
                "constant",
                name,
                "soft",
                0.0 if constant else 1.0,
                0.0,
                not constant,
                f"'{name}': constant at {cur.minimum:.4g} in {cur.count} values"
                if constant
                else f"'{name}': varies",
            )
        )
    return findings


def _categorical_findings(
    name: str, ref: CategoricalProfile, cur: CategoricalProfile, policy: QualityPolicy
) -> list[QualityFinding]:
    findings: list[QualityFinding] = []
    ref_count = ref.count
    if ref_count:
        seen_once = int((ref.counts[:-1] == 1).sum())
        chance = (ref.unseen + seen_once + 3.0 * math.sqrt(seen_once)) / ref_count
        top = ", ".join(f"{k!r}" for k, _ in cur.top_unseen(3))
        findings.append(
            _graded(
                "unseen_categories",
                name,
                cur.unseen / cur.count,
                min(1.0, policy.unseen_soft + chance),
                min(1.0, policy.unseen_hard + chance),
                "unseen categories",
                f" (most frequent: {top})" if top and cur.unseen else "",
            )
        )
    if int((ref.counts > 0).sum()) > 1:
        occupied = int((cur.counts > 0).sum())
        single_name = cur.unseen == 0 or len(cur.unseen_names) <= 1
        constant = occupied == 1 and single_name
        findings.append(
            QualityFinding(
                "constant",
                name,
                "soft",
                0.0 if constant else 1.0,
                0.0,
                not constant,
                f"'{name}': a single category in {cur.count} values" if constant
                else f"'{name}': varies",
            )
        )
    return findings
