"""The drift decision: which features drifted between a reference and a window profile, and how
badly.

A feature drifts when its change is *statistically significant* after Benjamini-Hochberg across
every hypothesis of the report AND *large enough to matter*. Significance alone alarms on any
tiny shift once windows hold enough rows; size alone alarms on chance differences of small
windows. Together they hold at any sample size: under no change the chance of an alarm is at
most ``alpha`` whatever the number of rows, and changes below the warning size do not alarm no
matter how many rows prove them.

Per feature two hypotheses are tested on the profiles (O(bins), never rows):

* the distribution of present values -- numeric: a test on the reference-quantile bins
  (:attr:`DriftPolicy.numeric_test`), with the Wasserstein distance in reference standard
  deviations as effect size; categorical: the chi-square test over categories and the unseen
  bucket, with the bias-corrected total variation distance as effect size;
* the missing rate -- a two-proportion test, with the absolute change in rate as effect size
  (skipped when neither profile has a missing value: there is nothing to test).

A new category is drift evidence on its own. The chi-square test of a categorical feature
already counts the reference's unseen bucket; besides the total variation, the *rise* of the
share of values the reference never had is a second effect size with its own thresholds
(:attr:`DriftPolicy.new_category_warning`), gated by the same significance. It rises above
what the reference itself expects: its unseen share plus the Good-Turing estimate of unseen
mass (the share of its values seen once) raised by three standard deviations, the bound the
data-quality check uses -- a long-tailed feature meets rare new values all the time. Without
it, 5% of traffic moving to a brand-new value is a total variation of exactly 0.05, which the
bias-corrected distance puts just under its warning threshold, though it is a kind of input the
model never saw. No hypothesis is added, so the false-alarm bound is unchanged.

Besides the statistics that decide, a report can carry others for people used to reading
them (PSI, Jensen-Shannon, KS, chi-square, ...): :attr:`DriftPolicy.report` names them; they
are computed on the same profiles and never change the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from driftline.drift.chi_square import chi_square_test_counts
from driftline.drift.jensen_shannon import jensen_shannon_counts
from driftline.drift.ks import ks_test_counts
from driftline.drift.missing_rate import missing_rate_test_counts
from driftline.drift.multiple_testing import benjamini_hochberg
from driftline.drift.psi import psi_counts
from driftline.drift.result import TestResult
from driftline.drift.total_variation import total_variation_counts
from driftline.drift.wasserstein import wasserstein_test_binned
from driftline.errors import ConfigurationError
from driftline.profiles import CategoricalProfile, DatasetProfile, FeatureProfile, NumericProfile

__all__ = [
    "REPORTABLE_STATISTICS",
    "DatasetDrift",
    "DriftPolicy",
    "FeatureDrift",
    "Severity",
    "decide_drift",
    "decide_prediction_drift",
]

Severity = Literal["none", "warning", "critical", "insufficient_data"]
NumericTest = Literal["ks", "chi_square"]

#: Statistics a report can carry besides the deciding ones (:attr:`DriftPolicy.report`).
REPORTABLE_STATISTICS = (
    "psi",
    "jensen_shannon",
    "ks",
    "chi_square",
    "wasserstein",
    "total_variation",
)

_RANK: dict[Severity, int] = {"insufficient_data": -1, "none": 0, "warning": 1, "critical": 2}


def _check_range(name: str, value: float, low: float, high: float, *, open_low: bool) -> None:
    ok = (value > low if open_low else value >= low) and value <= high
    if not ok or math.isnan(value):
        bracket = "(" if open_low else "["
        raise ConfigurationError(
            f"{name} must be in {bracket}{low}, {high}], got {value!r}"
        )


@dataclass(frozen=True)
class DriftPolicy:
    """When a feature, a dataset and a model's predictions count as drifted.

    The defaults hold at any sample size (see the module docstring) and were checked on seeded
    cases with known truth by ``benchmarks/detection.py``: no change gives at most 5% alarms
    from 200 to 200,000 rows on every distribution tried, a mean shift of 0.02 standard
    deviations or a total variation of 0.02 does not alarm even at 200,000 rows, and a mean
    shift of 0.1 standard deviations alarms in about two windows of three at 2,000 rows and
    in all of them from 20,000 rows.

    Parameters
    ----------
    alpha
        False discovery rate of Benjamini-Hochberg across all hypotheses of a report, in (0, 1).
    numeric_test
        Test of a numeric feature's bins: ``"ks"`` (Kolmogorov-Smirnov on the CDF at the bin
        edges; conservative -- never more alarming than the test on raw rows -- and about twice
        as powerful as chi-square for a small mean shift, so the default) or ``"chi_square"``
        (Pearson's test over the bins, pooled to 5 expected values a cell).
    numeric_warning, numeric_critical
        Wasserstein distance in reference standard deviations for a warning / critical: a shift
        of the mean by 0.05 / 0.2 standard deviations (0.2 is Cohen's "small" effect).
    categorical_warning, categorical_critical
        Bias-corrected total variation distance -- the share of traffic that moved between
        categories -- for a warning / critical: 5% / 20%.
    missing_warning, missing_critical
        Absolute change of the missing rate for a warning / critical: 2 / 10 percentage points.
    new_category_warning, new_category_critical
        Rise of the share of values in categories the reference never had (above what the
        reference expects), for a warning / critical: 2 percentage points (as for the missing
        rate: both are values the model was not trained on) / 20 (as for the total variation:
        a fifth of traffic somewhere else).
    min_samples
        Fewest present values in both profiles before a feature's distribution is tested (and
        fewest rows before its missing rate is); below it the feature is "insufficient_data".
    drift_share
        Share of tested features that must drift for the dataset verdict to be critical; any
        critical feature also makes it critical. In (0, 1].
    min_expected
        Smallest expected count of a cell in the smaller sample before cells are pooled for the
        chi-square test and the bias-corrected total variation.
    report
        Statistics reported per feature besides the deciding ones, from
        :data:`REPORTABLE_STATISTICS` (e.g. ``("ks", "chi_square", "psi")``, what many
        monitoring stacks show side by side). They land in :attr:`FeatureDrift.statistics` and
        do not change any verdict.

    Example
    -------
    >>> DriftPolicy().alpha
    0.05
    >>> DriftPolicy(numeric_warning=0.1, numeric_critical=0.3).numeric_critical
    0.3
    >>> try:
    ...     DriftPolicy(alpha=1.5)
    ... except ConfigurationError as exc:
    ...     print(exc)
    alpha must be in (0.0, 1.0], got 1.5
    >>> DriftPolicy(report=("psi", "jensen_shannon")).report
    ('psi', 'jensen_shannon')
    >>> try:
    ...     DriftPolicy(report=("psi", "hellinger"))
    ... except ConfigurationError as exc:
    ...     print(str(exc).split("; ")[1])
    got 'hellinger'

    References
    ----------
    Benjamini and Hochberg (1995), JRSS B 57(1). Cohen (1988), "Statistical power analysis for
    the behavioral sciences", 2nd ed. Yurdakul (2018) on PSI thresholds.
    """

    alpha: float = 0.05
    numeric_test: NumericTest = "ks"
    numeric_warning: float = 0.05
    numeric_critical: float = 0.2
    categorical_warning: float = 0.05
    categorical_critical: float = 0.2
    missing_warning: float = 0.02
    missing_critical: float = 0.1
    min_samples: int = 100
    drift_share: float = 0.5
    min_expected: float = 5.0
    new_category_warning: float = 0.02
    new_category_critical: float = 0.2
    report: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_range("alpha", self.alpha, 0.0, 1.0, open_low=True)
        if self.alpha >= 1.0:
            raise ConfigurationError(f"alpha must be in (0.0, 1.0), got {self.alpha!r}")
        if self.numeric_test not in ("ks", "chi_square"):
            raise ConfigurationError(
                f"numeric_test must be 'ks' or 'chi_square', got {self.numeric_test!r}"
            )
        kinds = (("numeric", math.inf), ("categorical", 1.0), ("missing", 1.0))
        for kind, high in (*kinds, ("new_category", 1.0)):
            warning = getattr(self, f"{kind}_warning")
            critical = getattr(self, f"{kind}_critical")
            _check_range(f"{kind}_warning", warning, 0.0, high, open_low=False)
            _check_range(f"{kind}_critical", critical, warning, high, open_low=False)
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int):
            raise ConfigurationError(
                f"min_samples must be an integer >= 1, got {self.min_samples!r}"
            )
        _check_range("min_samples", self.min_samples, 1, math.inf, open_low=False)
        _check_range("drift_share", self.drift_share, 0.0, 1.0, open_low=True)
        _check_range("min_expected", self.min_expected, 0.0, math.inf, open_low=False)
        if isinstance(self.report, str):
            raise ConfigurationError(
                f"report must be a tuple of statistic names, got the string {self.report!r}"
            )
        object.__setattr__(self, "report", tuple(self.report))
        for name in self.report:
            if name not in REPORTABLE_STATISTICS:
                raise ConfigurationError(
                    f"report entries must be among {', '.join(REPORTABLE_STATISTICS)}; "
                    f"got {name!r}"
                )


@dataclass(frozen=True)
class FeatureDrift:
    """The drift verdict of one feature.

    ``p_value`` / ``p_adjusted`` / ``statistic`` / ``effect_size`` describe the distribution
    test (None when it could not run); the ``missing_*`` fields the missing-rate test (p-values
    None when there was nothing to test); the ``new_category_*`` fields the share of values in
    categories the reference never had (categorical features; the reference rate is the one it
    expects: its unseen share plus a Good-Turing bound on its unseen mass). ``severity`` is the
    worst of the verdicts. ``statistics`` holds the extra
    statistics :attr:`DriftPolicy.report` asked for (informative only).
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    severity: Severity
    method: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    effect_name: str
    effect_size: float | None
    warning_threshold: float
    critical_threshold: float
    missing_rate_reference: float
    missing_rate_current: float
    missing_p_value: float | None
    missing_p_adjusted: float | None
    n_reference: int
    n_current: int
    reasons: tuple[str, ...]
    new_category_rate_reference: float = 0.0
    new_category_rate_current: float = 0.0
    statistics: tuple[TestResult, ...] = ()

    @property
    def drifted(self) -> bool:
        return self.severity in ("warning", "critical")

    def statistic_of(self, method: str) -> TestResult | None:
        """The reported statistic named ``method`` (see :attr:`DriftPolicy.report`), or None."""
        for result in self.statistics:
            if result.method == method:
                return result
        return None


@dataclass(frozen=True)
class DatasetDrift:
    """The drift verdict of a window: every feature's, and the dataset's.

    ``severity`` is "critical" when any feature is critical or at least
    :attr:`DriftPolicy.drift_share` of the tested features drifted (for prediction drift: when
    any output is critical), "warning" when some feature drifted, "none" when none did and
    "insufficient_data" when no feature could be tested.
    """

    severity: Severity
    features: tuple[FeatureDrift, ...]
    n_tested: int
    n_drifted: int
    share_drifted: float
    n_reference_rows: int
    n_current_rows: int
    alpha: float
    reasons: tuple[str, ...]

    @property
    def drifted(self) -> bool:
        return self.severity in ("warning", "critical")

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.drifted)

    def __getitem__(self, feature: str) -> FeatureDrift:
        for f in self.features:
            if f.feature == feature:
                return f
        raise KeyError(feature)


@dataclass
class _Pending:
    """Per-feature results before the multiple-testing correction."""

    name: str
    kind: Literal["numeric", "categorical"]
    distribution: TestResult | None
    effect: TestResult | None
    missing: TestResult | None
    missing_testable: bool
    rate_reference: float
    rate_current: float
    n_reference: int
    n_current: int
    new_rate_reference: float = 0.0
    new_rate_current: float = 0.0
    statistics: tuple[TestResult, ...] = ()


def _severity(
    significant: bool, effect: float, warning: float, critical: float
) -> Severity:
    if not significant or effect < warning:
        return "none"
    return "critical" if effect >= critical else "warning"


def _fmt(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3g}"


def _reported(
    ref: FeatureProfile, cur: FeatureProfile, policy: DriftPolicy, numeric: bool
) -> tuple[TestResult, ...]:
    """The informative statistics ``policy.report`` asks for, on the profiles' cells."""
    out: list[TestResult] = []
    for name in policy.report:
        if name == "psi":
            out.append(psi_counts(ref.counts, cur.counts))
        elif name == "jensen_shannon":
            out.append(jensen_shannon_counts(ref.counts, cur.counts))
        elif name == "ks":
            if numeric:  # the KS test needs ordered cells
                out.append(ks_test_counts(ref.counts, cur.counts, alpha=policy.alpha))
        elif name == "chi_square":
            out.append(
                chi_square_test_counts(
                    ref.counts,
                    cur.counts,
                    alpha=policy.alpha,
                    min_expected=policy.min_expected,
                    ordered=numeric,
                )
            )
        elif name == "wasserstein":
            if numeric:
                assert isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile)
                out.append(
                    wasserstein_test_binned(
                        ref.counts,
                        cur.counts,
                        ref.centroids(),
                        cur.centroids(),
                        scale=ref.std,
                        threshold=policy.numeric_warning,
                    )
                )
        else:  # total_variation, plain (the decision uses the bias-corrected one)
            out.append(total_variation_counts(ref.counts, cur.counts))
    return tuple(out)


def _pending(
    name: str, ref: FeatureProfile, cur: FeatureProfile, policy: DriftPolicy
) -> _Pending:
    distribution = effect = missing = None
    new_rate_reference = new_rate_current = 0.0
    n_ref, n_cur = ref.count, cur.count
    testable = min(n_ref, n_cur) >= policy.min_samples
    if isinstance(ref, NumericProfile):
        assert isinstance(cur, NumericProfile)
        kind: Literal["numeric", "categorical"] = "numeric"
        if testable:
            if policy.numeric_test == "ks":
                distribution = ks_test_counts(ref.counts, cur.counts, alpha=policy.alpha)
            else:
                distribution = chi_square_test_counts(
                    ref.counts,
                    cur.counts,
                    alpha=policy.alpha,
                    min_expected=policy.min_expected,
                    ordered=True,
                )
            effect = wasserstein_test_binned(
                ref.counts,
                cur.counts,
                ref.centroids(),
                cur.centroids(),
                scale=ref.std,
                threshold=policy.numeric_warning,
            )
    else:
        assert isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile)
        kind = "categorical"
        if testable:
            distribution = chi_square_test_counts(
                ref.counts, cur.counts, alpha=policy.alpha, min_expected=policy.min_expected
            )
            effect = total_variation_counts(
                ref.counts,
                cur.counts,
                threshold=policy.categorical_warning,
                bias_corrected=True,
                min_expected=policy.min_expected,
            )
            # What share of values the reference expects never to have seen: its own unseen
            # bucket plus the Good-Turing estimate of its missing mass (the number of values
            # seen exactly once) raised by three of its standard deviations -- the same bound
            # as the data-quality check. A long-tailed feature meets rare new values all the
            # time; that is not drift.
            seen_once = int((ref.counts[:-1] == 1).sum())
            expected_new = ref.unseen + seen_once + 3.0 * math.sqrt(seen_once)
            new_rate_reference = min(1.0, expected_new / n_ref)
            new_rate_current = cur.unseen / n_cur
    missing_testable = min(ref.total, cur.total) >= policy.min_samples
    if missing_testable and ref.missing + cur.missing > 0:
        missing = missing_rate_test_counts(
            ref.missing, ref.total, cur.missing, cur.total, alpha=policy.alpha
        )
    return _Pending(
        name,
        kind,
        distribution,
        effect,
        missing,
        missing_testable,
        ref.missing_rate,
        cur.missing_rate,
        n_ref,
        n_cur,
        new_rate_reference,
        new_rate_current,
        _reported(ref, cur, policy, kind == "numeric") if testable else (),
    )


def _decide(
    reference: DatasetProfile, current: DatasetProfile, policy: DriftPolicy, *, share_rule: bool
) -> DatasetDrift:
    reference.check_compatible(current)
    ref_features, cur_features = reference.features, current.features
    pending = [_pending(n, ref_features[n], cur_features[n], policy) for n in ref_features]
    p_values = [
        t.p_value
        for item in pending
        for t in (item.distribution, item.missing)
        if t is not None and t.p_value is not None
    ]
    adjusted = iter(benjamini_hochberg(p_values).tolist())
    features = []
    for item in pending:
        p_dist = next(adjusted) if item.distribution is not None else None
        p_miss = next(adjusted) if item.missing is not None else None
        features.append(_feature_drift(item, p_dist, p_miss, policy))
    tested = [f for f in features if f.severity != "insufficient_data"]
    drifted = [f for f in tested if f.drifted]
    share = len(drifted) / len(tested) if tested else 0.0
    reasons: list[str] = []
    severity: Severity
    if not tested:
        severity = "insufficient_data"
        reasons.append(f"no feature had {policy.min_samples} values in both windows")
    elif any(f.severity == "critical" for f in drifted):
        severity = "critical"
        names = [f.feature for f in drifted if f.severity == "critical"]
        reasons.append(f"critical drift in {', '.join(names)}")
    elif share_rule and drifted and share >= policy.drift_share:
        severity = "critical"
        reasons.append(
            f"{len(drifted)} of {len(tested)} features drifted ({share:.0%} >= "
            f"{policy.drift_share:.0%})"
        )
    elif drifted:
        severity = "warning"
        reasons.append(f"drift warning in {', '.join(f.feature for f in drifted)}")
    else:
        severity = "none"
        reasons.append(f"no drift in {len(tested)} tested features")
    return DatasetDrift(
        severity=severity,
        features=tuple(features),
        n_tested=len(tested),
        n_drifted=len(drifted),
        share_drifted=share,
        n_reference_rows=reference.n_rows,
        n_current_rows=current.n_rows,
        alpha=policy.alpha,
        reasons=tuple(reasons),
    )


def _p_text(p_value: float | None, name: str = "p") -> str:
    """``p=...`` for a reason line; a p-value that underflowed to 0 prints as ``p<1e-300``
    (it is below the smallest normal double), never as something it is not."""
    if p_value is None:
        return f"{name} n/a"
    return f"{name}<1e-300" if p_value == 0.0 else f"{name}={_fmt(p_value)}"


def _feature_drift(
    item: _Pending,
    p_dist: float | None,
    p_miss: float | None,
    policy: DriftPolicy,
) -> FeatureDrift:
    if item.kind == "numeric":
        effect_name = "wasserstein_normalized"
        warning, critical = policy.numeric_warning, policy.numeric_critical
    else:
        effect_name = "total_variation_corrected"
        warning, critical = policy.categorical_warning, policy.categorical_critical
    reasons: list[str] = []
    dist_severity: Severity = "insufficient_data"
    if item.distribution is not None and item.effect is not None and p_dist is not None:
        size = item.effect.effect_size
        dist_severity = _severity(p_dist < policy.alpha, size, warning, critical)
        test = item.distribution
        verdict = "significant" if p_dist < policy.alpha else "not significant"
        reasons.append(
            f"{test.method} {_p_text(test.p_value)}, {_p_text(p_dist, 'BH-adjusted')} "
            f"({verdict} at {policy.alpha}); {effect_name} {size:.3g} "
            f"(warning {warning}, critical {critical}) -> {dist_severity}"
        )
        rise = item.new_rate_current - item.new_rate_reference
        if item.kind == "categorical" and item.new_rate_current > 0:
            new_severity = _severity(
                p_dist < policy.alpha,
                rise,
                policy.new_category_warning,
                policy.new_category_critical,
            )
            reasons.append(
                f"new categories {item.new_rate_current:.3g} of values (the reference "
                f"expects up to {item.new_rate_reference:.3g}; rise warning "
                f"{policy.new_category_warning}, critical {policy.new_category_critical}) "
                f"-> {new_severity}"
            )
            dist_severity = max(dist_severity, new_severity, key=lambda s: _RANK[s])
    else:
        reasons.append(
            f"distribution not tested: {min(item.n_reference, item.n_current)} present values "
            f"< min_samples {policy.min_samples}"
        )
    miss_severity: Severity = "none" if item.missing_testable else "insufficient_data"
    if item.missing is not None and p_miss is not None:
        miss_severity = _severity(
            p_miss < policy.alpha,
            item.missing.effect_size,
            policy.missing_warning,
            policy.missing_critical,
        )
        reasons.append(
            f"missing rate {item.rate_reference:.3g} -> {item.rate_current:.3g}, "
            f"{_p_text(item.missing.p_value)}, {_p_text(p_miss, 'BH-adjusted')} "
            f"(warning {policy.missing_warning}, critical {policy.missing_critical}) "
            f"-> {miss_severity}"
        )
    if dist_severity == "insufficient_data" and _RANK[miss_severity] <= 0:
        severity: Severity = "insufficient_data"
    else:
        severity = max(dist_severity, miss_severity, key=lambda s: _RANK[s])
    return FeatureDrift(
        feature=item.name,
        kind=item.kind,
        severity=severity,
        method=item.distribution.method if item.distribution else "",
        statistic=item.distribution.statistic if item.distribution else None,
        p_value=item.distribution.p_value if item.distribution else None,
        p_adjusted=p_dist,
        effect_name=effect_name,
        effect_size=item.effect.effect_size if item.effect else None,
        warning_threshold=warning,
        critical_threshold=critical,
        missing_rate_reference=item.rate_reference,
        missing_rate_current=item.rate_current,
        missing_p_value=item.missing.p_value if item.missing else None,
        missing_p_adjusted=p_miss,
        n_reference=item.n_reference,
        n_current=item.n_current,
        reasons=tuple(reasons),
        new_category_rate_reference=item.new_rate_reference,
        new_category_rate_current=item.new_rate_current,
        statistics=item.statistics,
    )


def decide_drift(
    reference: DatasetProfile, current: DatasetProfile, *, policy: DriftPolicy | None = None
) -> DatasetDrift:
    """Data drift of a window against the reference, per feature and for the dataset.

    Parameters
    ----------
    reference
        The reference profile (training data).
    current
        A window profile built on the same bins (``reference.empty_like()`` plus rows, or a
        merge of such buckets).
    policy
        Thresholds; :class:`DriftPolicy` defaults when None.

    Example
    -------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from driftline.profiles import build_reference_profile
    >>> from driftline.schema import infer_schema
    >>> rng = np.random.default_rng(0)
    >>> def rows(n, shift):
    ...     return pd.DataFrame({"x": rng.normal(shift, 1, n), "y": rng.normal(0, 1, n),
    ...                          "c": rng.choice(["a", "b", "c"], n)})
    >>> train = rows(20_000, 0.0)
    >>> reference = build_reference_profile(train, infer_schema(train, None))
    >>> window = reference.empty_like(seed=1)
    >>> window.add_frame(rows(5_000, 0.3))
    >>> report = decide_drift(reference, window)
    >>> report.severity, report.drifted_features
    ('critical', ('x',))
    >>> [(f.feature, f.severity, round(f.effect_size, 2)) for f in report.features]
    [('x', 'critical', 0.29), ('y', 'none', 0.02), ('c', 'none', 0.0)]
    >>> small = reference.empty_like(seed=2)
    >>> small.add_frame(rows(50, 3.0))
    >>> decide_drift(reference, small).severity
    'insufficient_data'

    References
    ----------
    Benjamini and Hochberg (1995); Rabanser, Guennemann and Lipton (2019), "Failing loudly: an
    empirical study of methods for detecting dataset shift", NeurIPS (univariate tests with a
    multiple-testing correction as a strong baseline).
    """
    return _decide(reference, current, policy or DriftPolicy(), share_rule=True)


def decide_prediction_drift(
    reference: DatasetProfile, current: DatasetProfile, *, policy: DriftPolicy | None = None
) -> DatasetDrift:
    """Prediction drift: the same decision over output profiles (``prediction``, ``score``).

    Any drifted output makes the verdict drifted (there is no share rule over two outputs).

    Parameters
    ----------
    reference
        Output profile of the reference predictions
        (:func:`driftline.profiles.build_output_profile`).
    current
        Output profile of a window on the same bins.
    policy
        Thresholds; :class:`DriftPolicy` defaults when None.

    Example
    -------
    >>> import numpy as np
    >>> from driftline.profiles import build_output_profile, output_columns
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.beta(2, 5, 10_000)
    >>> reference = build_output_profile((scores > 0.5).astype(int), scores, classes=[0, 1])
    >>> window = reference.empty_like(seed=1)
    >>> later = rng.beta(3, 4, 2_000)
    >>> window.add_columns(output_columns((later > 0.5).astype(int), later))
    >>> report = decide_prediction_drift(reference, window)
    >>> report.severity, [(f.feature, f.severity) for f in report.features]
    ('critical', [('prediction', 'critical'), ('score', 'critical')])

    References
    ----------
    Rabanser, Guennemann and Lipton (2019).
    """
    return _decide(reference, current, policy or DriftPolicy(), share_rule=False)
