"""A seeded synthetic domain: loan applications, with a label rule that can change (concept).

Numeric features (some with missing values), categorical features and a boolean, and a binary
target ``default``. The label is drawn from a logistic model of the features; the ``concept``
argument switches to a different rule, which is how concept drift is simulated.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "SEGMENT_DTI",
    "TARGET",
    "Concept",
    "default_probability",
    "generate_loans",
    "label_loans",
]

TARGET = "default"
Concept = Literal["base", "shifted", "segment"]

#: Under the ``segment`` concept, applications above this debt-to-income ratio follow the
#: shifted rule (about 3% of base traffic; most of a high-debt drifted population).
SEGMENT_DTI = 0.6

HOME_OWNERSHIP = ("RENT", "MORTGAGE", "OWN", "OTHER")
PURPOSE = (
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "small_business",
    "other",
)


def generate_loans(
    n: int, *, seed: int = 0, concept: Concept = "base", with_target: bool = True
) -> pd.DataFrame:
    """Generate ``n`` loan applications.

    Parameters
    ----------
    n
        Number of rows.
    seed
        Seed of the random generator; the same seed gives the same rows.
    concept
        Which label rule draws ``default``: ``"base"``, ``"shifted"`` (a new rule for every
        application) or ``"segment"`` (the new rule only for high debt-to-income
        applications, above :data:`SEGMENT_DTI`).
    with_target
        Add the ``default`` column.

    Example
    -------
    >>> frame = generate_loans(1000, seed=1)
    >>> frame.shape, sorted(frame["default"].unique().tolist())
    ((1000, 12), [0, 1])
    >>> round(float(frame["default"].mean()), 2)
    0.32
    """
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(41, 12, n), 18, 85).round()
    income = np.exp(rng.normal(10.9, 0.55, n)).round(-2)
    loan_amount = np.clip(income * rng.uniform(0.05, 0.6, n), 1_000, None).round(-2)
    term = rng.choice([12.0, 24.0, 36.0, 60.0], size=n, p=[0.1, 0.2, 0.45, 0.25])
    credit_score = np.clip(rng.normal(690, 60, n), 300, 850).round()
    dti = np.clip(rng.gamma(4.0, 0.07, n), 0, 1.5).round(3)
    employment_years = np.clip(rng.exponential(6.0, n), 0, 40).round(1)
    employment_years[rng.random(n) < 0.04] = np.nan
    open_accounts = rng.poisson(6, n).astype(float)
    home = rng.choice(HOME_OWNERSHIP, size=n, p=[0.42, 0.38, 0.17, 0.03])
    purpose = rng.choice(PURPOSE, size=n, p=[0.4, 0.22, 0.1, 0.09, 0.06, 0.05, 0.08])
    has_cosigner = rng.random(n) < 0.12
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "loan_amount": loan_amount,
            "term_months": term,
            "credit_score": credit_score,
            "debt_to_income": dti,
            "employment_years": employment_years,
            "open_accounts": open_accounts,
            "home_ownership": pd.Series(home, dtype=object),
            "purpose": pd.Series(purpose, dtype=object),
            "has_cosigner": has_cosigner,
        }
    )
    if with_target:
        frame[TARGET] = label_loans(frame, concept=concept, rng=rng)
    return frame


def default_probability(frame: pd.DataFrame, *, concept: Concept = "base") -> np.ndarray:
    """The true probability of default of each application under a label rule."""
    score = (frame["credit_score"].to_numpy(dtype=float) - 690.0) / 60.0
    dti = (frame["debt_to_income"].to_numpy(dtype=float) - 0.28) / 0.14
    ratio = frame["loan_amount"].to_numpy(dtype=float) / frame["income"].to_numpy(dtype=float)
    ratio = (ratio - 0.33) / 0.16
    emp = np.nan_to_num(frame["employment_years"].to_numpy(dtype=float), nan=2.0)
    emp = (np.minimum(emp, 15.0) - 5.0) / 4.5
    term = (frame["term_months"].to_numpy(dtype=float) - 36.0) / 15.0
    small_business = (frame["purpose"] == "small_business").to_numpy(dtype=float)
    renting = (frame["home_ownership"] == "RENT").to_numpy(dtype=float)
    cosigner = frame["has_cosigner"].to_numpy(dtype=float)
    if concept == "segment":
        high_debt = frame["debt_to_income"].to_numpy(dtype=float) > SEGMENT_DTI
        return np.where(
            high_debt,
            default_probability(frame, concept="shifted"),
            default_probability(frame, concept="base"),
        )
    if concept == "base":
        logit = (
            -1.25
            - 1.3 * score
            + 0.9 * dti
            + 0.6 * ratio
            - 0.35 * emp
            + 0.3 * term
            + 0.8 * small_business
            + 0.3 * renting
            - 0.7 * cosigner
        )
    else:
        # After the shift, debt load and term dominate and credit score matters much less:
        # a model trained on the base rule ranks many applications wrongly.
        logit = (
            -1.0
            - 0.3 * score
            + 1.8 * dti
            - 0.6 * ratio
            + 0.4 * emp
            + 1.0 * term
            - 0.2 * small_business
            + 0.9 * renting
            - 0.2 * cosigner
        )
    return np.asarray(1.0 / (1.0 + np.exp(-logit)))


def label_loans(
    frame: pd.DataFrame, *, concept: Concept = "base", rng: np.random.Generator | None = None
) -> np.ndarray:
    """Draw the ``default`` label of each application under a label rule."""
    rng = rng if rng is not None else np.random.default_rng(0)
    return (rng.random(len(frame)) < default_probability(frame, concept=concept)).astype(int)
