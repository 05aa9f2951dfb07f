"""Training-data assembly of the closed loop (loop/dataset.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftline.data.synthetic import TARGET, generate_loans
from driftline.loop.dataset import assemble
from driftline.schema import infer_schema


def test_smote_keeps_booleans_boolean_across_reference_and_production_rows() -> None:
    base = generate_loans(2_000, seed=1)
    schema = infer_schema(base, TARGET, allow_missing=True)
    # The champion's reference rows hold booleans as 0.0/1.0 (the schema's coercion) ...
    base = schema.coerce_frame(base).assign(**{TARGET: base[TARGET]})
    # ... production rows come back from JSON as True/False, some missing.
    drift = generate_loans(600, seed=2)
    drift["has_cosigner"] = drift["has_cosigner"].astype(object)
    drift.loc[drift.index[:40], "has_cosigner"] = None
    data = assemble(drift, base, target=TARGET, smote=True, base_rows=1_000, seed=3)
    assert data.n_smote > 0
    smoted = data.train[data.train["source"] == "smote"]
    assert len(smoted) == data.n_smote
    assert smoted["has_cosigner"].map(type).eq(bool).all()
    assert set(smoted["home_ownership"]) <= set(base["home_ownership"].dropna())
    schema.coerce_frame(data.train)  # what training does first: no "must be numeric" error
    counts = data.train[TARGET].value_counts()
    assert counts.min() == counts.max()  # SMOTE balanced the classes
    assert np.isfinite(data.train["weight"]).all()
    pd.testing.assert_index_equal(data.recent_holdout.columns.drop("source"), drift.columns)
