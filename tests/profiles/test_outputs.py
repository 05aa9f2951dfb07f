"""Profiles of model outputs: predictions and scores (profiles/outputs.py)."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.errors import DataError
from driftline.profiles import build_output_profile, output_columns
from tests.profiles.profiletools import categorical_of, numeric_of


def test_output_profile_bins_predictions_and_scores() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([2.0, 1.0, 1.0], size=2000)
    predicted = np.array(["x", "y", "z"])[proba.argmax(axis=1)]
    ref = build_output_profile(predicted, proba, classes=["x", "y", "z"])
    prediction = categorical_of(ref, "prediction")
    score = numeric_of(ref, "score")
    assert prediction.categories == ("x", "y", "z") and prediction.count == 2000
    assert score.count == 2000 and score.mean == pytest.approx(proba.max(axis=1).mean())
    window = ref.empty_like(seed=1)
    window.add_columns(output_columns(["x", "w"], [[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]]))
    assert categorical_of(window, "prediction").unseen_names == {"w": 1}
    assert output_columns([0, 1], [[0.3, 0.7], [0.6, 0.4]])["score"].tolist() == [0.7, 0.4]
    with pytest.raises(DataError, match="predictions but"):
        output_columns([0], [0.1, 0.2])
