"""Profiles of a model's outputs: the predicted label (categorical over the model's classes)
and its score (numeric, binned at the reference score quantiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.errors import DataError
from driftline.profiles.build import DEFAULT_BINS, quantile_edges
from driftline.profiles.categorical import CategoricalProfile
from driftline.profiles.dataset import DatasetProfile, FeatureProfile
from driftline.profiles.numeric import DEFAULT_SAMPLE_SIZE, NumericProfile

__all__ = ["PREDICTION", "SCORE", "build_output_profile", "output_columns"]

#: Output profile feature names.
PREDICTION = "prediction"
SCORE = "score"


def output_columns(
    predicted: Sequence[Any] | npt.ArrayLike, scores: npt.ArrayLike
) -> dict[str, Any]:
    """Columns of an output profile for one batch of predictions.

    ``scores`` is one score per row (e.g. the positive-class probability or an anomaly score)
    or a probability matrix: with two columns the second (positive class) is used, with more
    the largest (the model's confidence).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2:
        s = s[:, 1] if s.shape[1] == 2 else s.max(axis=1)
    elif s.ndim != 1:
        raise DataError(f"scores must be 1-D or 2-D, got shape {s.shape}")
    labels = np.asarray(predicted, dtype=object).ravel()
    if len(labels) != len(s):
        raise DataError(f"{len(labels)} predictions but {len(s)} scores")
    return {PREDICTION: labels, SCORE: s}


def build_output_profile(
    predicted: Sequence[Any] | npt.ArrayLike,
    scores: npt.ArrayLike,
    classes: Sequence[Any],
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> DatasetProfile:
    """Reference profile of a model's outputs: features ``prediction`` and ``score``.

    ``prediction`` is categorical over ``classes`` (empty for anomaly models without classes:
    every label then counts as unseen); ``score`` is numeric, binned at the reference score
    quantiles. Window profiles come from :meth:`DatasetProfile.empty_like` and are fed with
    ``window.add_columns(output_columns(predicted, scores))``.

    Parameters
    ----------
    predicted
        Predicted labels of the reference rows.
    scores
        Scores of the reference rows (see :func:`output_columns`).
    classes
        The model's classes.
    bins, sample_size, seed
        As in :func:`build_reference_profile`.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.beta(2, 5, size=1000)
    >>> ref = build_output_profile((scores > 0.5).astype(int), scores, classes=[0, 1], bins=5)
    >>> ref.features["prediction"].counts.tolist()
    [913, 87, 0]
    >>> window = ref.empty_like(seed=1)
    >>> window.add_columns(output_columns([1, 1], [[0.2, 0.8], [0.1, 0.9]]))
    >>> window.features["score"].counts.tolist()
    [0, 0, 0, 0, 0, 1, 1]

    References
    ----------
    Rabanser, Guennemann and Lipton (2019), "Failing loudly: an empirical study of methods
    for detecting dataset shift", NeurIPS (monitoring model outputs as a shift signal).
    """
    columns = output_columns(predicted, scores)
    s = columns[SCORE]
    finite = s[np.isfinite(s)]
    features: dict[str, FeatureProfile] = {
        PREDICTION: CategoricalProfile.empty(tuple(map(str, classes))),
        SCORE: NumericProfile.empty(
            quantile_edges(finite, bins),
            reference_minimum=float(finite.min()) if len(finite) else None,
            reference_maximum=float(finite.max()) if len(finite) else None,
            sample_size=sample_size,
        ),
    }
    profile = DatasetProfile(features, seed=seed)
    profile.add_columns(columns)
    return profile
