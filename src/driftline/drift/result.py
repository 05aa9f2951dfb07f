"""The result every batch drift test returns."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TestResult"]


@dataclass(frozen=True)
class TestResult:
    """Outcome of one batch drift test.

    Tests with a p-value (Kolmogorov-Smirnov, chi-square, missing rate) decide ``drifted`` as
    ``p_value < threshold`` (``threshold`` is the significance level); distances (PSI,
    Wasserstein, Jensen-Shannon, total variation) decide ``effect_size >= threshold``. Both
    kinds report an effect size, so a caller can gate significance by size.

    Parameters
    ----------
    statistic
        The test statistic (the distance itself for distances).
    p_value
        P-value under "same distribution", or None where the test defines none.
    effect_size
        Size of the change on the test's own scale (larger means more change).
    threshold
        What ``drifted`` was decided against.
    drifted
        The test's verdict.
    method
        Name of the test.
    """

    __test__ = False  # not a pytest test class, despite the name

    statistic: float
    p_value: float | None
    effect_size: float
    threshold: float
    drifted: bool
    method: str = ""
