"""Anomaly detectors on tabular metrics, each a :class:`~driftline.models.base.Model`.

Every detector answers three questions about each row:

``score(frame)``
    an anomaly score, higher meaning more anomalous;
``flag(frame)``
    whether the score is past the detector's threshold;
``predict_proba(frame)``
    probabilities of the classes ``("normal", "anomaly")``, a fixed, monotone function of the
    score that crosses 0.5 exactly at the threshold, so that the most probable class is
    ``"anomaly"`` exactly when the row is flagged. Serving, shadowing and the monitor treat a
    detector as any other binary classifier.

Unsupervised detectors turn a nonnegative score ``s`` and a threshold ``t > 0`` into
``P(anomaly)`` with :func:`proba_from_score`. For an unbounded score (reconstruction error)::

    P(anomaly) = s / (2 t)                        when s <= t
               = 1 - t / (2 s)                    when s > t

and for a score bounded by ``u`` (the Isolation Forest's, ``u = 1``)::

    P(anomaly) = s / (2 t)                        when s <= t
               = 1/2 + (s - t) / (2 (u - t))      when s > t

Both are continuous, strictly increasing, 0 at ``s = 0``, 0.5 at ``s = t`` and 1 at the
bound (or in the limit). They rank rows exactly as the score does, so ROC AUC is the same on
either; they are not calibrated probabilities.

Detectors take frames of numeric feature columns and remember the columns they were fitted on;
they are plain picklable objects (``joblib.dump`` / ``joblib.load``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from driftline.errors import ConfigurationError, DataError
from driftline.models.base import Model

__all__ = [
    "ANOMALY",
    "CLASSES",
    "NORMAL",
    "AnomalyDetector",
    "IsolationForestDetector",
    "SupervisedForestDetector",
    "binary_labels",
    "proba_from_score",
]

NORMAL: Final = "normal"
ANOMALY: Final = "anomaly"
#: The classes of every detector, in the column order of ``predict_proba``.
CLASSES: Final = (NORMAL, ANOMALY)


@runtime_checkable
class AnomalyDetector(Model, Protocol):
    """A :class:`Model` over the classes ``("normal", "anomaly")`` with a score and a flag."""

    def fit(self, frame: pd.DataFrame, y: Sequence[Any] | np.ndarray | None = None) -> Self:
        """Learn what normal looks like; ``y`` (1 = anomaly) is used by the kinds that can."""
        ...

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Anomaly score of each row; higher is more anomalous."""
        ...

    def flag(self, frame: pd.DataFrame) -> np.ndarray:
        """Whether each row is an anomaly (boolean array)."""
        ...


def proba_from_score(
    score: np.ndarray, threshold: float, *, upper: float | None = None
) -> np.ndarray:
    """Probabilities ``(normal, anomaly)`` from nonnegative scores, 0.5 at the threshold.

    Parameters
    ----------
    score
        Nonnegative anomaly scores (negative values count as 0, values above ``upper`` as
        ``upper``).
    threshold
        The score above which a row is flagged; must be positive.
    upper
        The largest possible score, when scores are bounded; ``None`` for unbounded scores.

    Example
    -------
    >>> scores = np.array([0.0, 0.25, 0.5, 1.0, 5.0])
    >>> proba_from_score(scores, threshold=0.5)[:, 1].round(2)
    array([0.  , 0.25, 0.5 , 0.75, 0.95])
    >>> proba_from_score(scores, threshold=0.5, upper=1.0)[:, 1].round(2)
    array([0.  , 0.25, 0.5 , 1.  , 1.  ])
    """
    if not threshold > 0:
        raise ConfigurationError(f"threshold must be positive, got {threshold}")
    if upper is not None and not upper > threshold:
        raise ConfigurationError(f"upper must be above threshold {threshold}, got {upper}")
    s = np.clip(np.asarray(score, dtype=np.float64), 0.0, upper)
    below = s / (2.0 * threshold)
    if upper is None:
        above = 1.0 - threshold / (2.0 * np.maximum(s, threshold))
    else:
        above = 0.5 + (s - threshold) / (2.0 * (upper - threshold))
    p = np.where(s <= threshold, below, above)
    return np.column_stack([1.0 - p, p])


def binary_labels(y: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
    """Labels as an int array with 1 for anomalies.

    Accepts 0/1, booleans, or the class names ``"normal"`` and ``"anomaly"``.

    >>> binary_labels([0, 1, True, "anomaly", "normal", "1"]).tolist()
    [0, 1, 1, 1, 0, 1]
    """
    out = np.empty(len(y), dtype=np.int64)
    for i, value in enumerate(y):
        text = str(value.item() if isinstance(value, np.generic) else value).strip().lower()
        if text in {"1", "1.0", "true", ANOMALY}:
            out[i] = 1
        elif text in {"0", "0.0", "false", NORMAL}:
            out[i] = 0
        else:
            raise DataError(
                f"anomaly labels must be 0/1, booleans or {CLASSES}; got {value!r} at row {i}"
            )
    return out


def _columns(frame: pd.DataFrame, features: tuple[str, ...] | None, who: str) -> np.ndarray:
    """The feature matrix of ``frame`` in fitted column order."""
    if features is None:
        raise ConfigurationError(f"{who} is not fitted; call fit(frame) first")
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise DataError(f"data lacks feature column(s) {missing}; {who} expects {list(features)}")
    try:
        return frame[list(features)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{who} needs numeric feature columns: {exc}") from exc


def _feature_names(frame: pd.DataFrame) -> tuple[str, ...]:
    if frame.shape[1] == 0:
        raise DataError("data has no feature columns")
    if len(frame) == 0:
        raise DataError("data has no rows")
    return tuple(str(c) for c in frame.columns)


class IsolationForestDetector:
    """Standardize, then isolate: an Isolation Forest over scaled metrics.

    Anomalies are few and different, so random axis-parallel cuts separate them from the rest
    in few steps. The score is the one of the paper, ``s(x, n) = 2 ** (-E[h(x)] / c(n))``, in
    ``(0, 1]``: close to 1 for anomalies, about 0.5 or less for normal rows. Missing values are
    imputed with the training median before scaling.

    Parameters
    ----------
    contamination
        Expected share of anomalies in the training data, in ``(0, 0.5]``; the threshold is the
        score quantile that flags that share of training rows. ``"auto"`` uses the paper's
        threshold, a score of 0.5.
    n_estimators
        Number of isolation trees.
    max_samples
        Rows drawn to grow each tree (the paper's ψ = 256 by default).
    seed
        Seed of the tree construction.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> normal = pd.DataFrame(rng.normal(0.0, 1.0, size=(500, 2)), columns=["a", "b"])
    >>> detector = IsolationForestDetector(contamination=0.01, seed=0).fit(normal)
    >>> probe = pd.DataFrame({"a": [0.0, 8.0], "b": [0.0, -8.0]})
    >>> detector.flag(probe).tolist()
    [False, True]
    >>> detector.score(probe).round(2), round(detector.threshold_, 2)
    (array([0.4 , 0.77]), 0.65)
    >>> detector.predict_proba(probe).round(2)
    array([[0.69, 0.31],
           [0.34, 0.66]])

    References
    ----------
    Liu, F. T., Ting, K. M. and Zhou, Z.-H. (2008). Isolation Forest. *Proceedings of the 8th
    IEEE International Conference on Data Mining (ICDM)*, 413–422.
    """

    def __init__(
        self,
        *,
        contamination: float | Literal["auto"] = "auto",
        n_estimators: int = 200,
        max_samples: int = 256,
        seed: int = 0,
    ) -> None:
        if contamination != "auto" and not (
            isinstance(contamination, int | float) and 0.0 < contamination <= 0.5
        ):
            raise ConfigurationError(
                f"contamination must be 'auto' or in (0, 0.5], got {contamination!r}"
            )
        if n_estimators < 1:
            raise ConfigurationError(f"n_estimators must be at least 1, got {n_estimators}")
        if max_samples < 2:
            raise ConfigurationError(f"max_samples must be at least 2, got {max_samples}")
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed
        self.features_: tuple[str, ...] | None = None
        self.pipeline_: Pipeline | None = None
        self.threshold_ = 0.5

    def __repr__(self) -> str:
        return (
            f"IsolationForestDetector(contamination={self.contamination!r}, "
            f"n_estimators={self.n_estimators}, max_samples={self.max_samples}, seed={self.seed})"
        )

    @property
    def classes(self) -> tuple[str, str]:
        return CLASSES

    def fit(self, frame: pd.DataFrame, y: Sequence[Any] | np.ndarray | None = None) -> Self:
        """Fit on ``frame``'s columns (all numeric); ``y`` is ignored (unsupervised)."""
        features = _feature_names(frame)
        x = _columns(frame, features, "IsolationForestDetector")
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(x)),
            contamination=self.contamination,
            random_state=self.seed,
        )
        pipeline = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("forest", forest),
            ]
        )
        pipeline.fit(x)
        self.features_ = features
        self.pipeline_ = pipeline
        # scikit-learn's score_samples is minus the paper's score; offset_ is its threshold.
        self.threshold_ = float(-forest.offset_)
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The paper's anomaly score ``s(x, n)`` of each row, in ``(0, 1]``."""
        x = _columns(frame, self.features_, "IsolationForestDetector")
        assert self.pipeline_ is not None
        return np.asarray(-self.pipeline_.score_samples(x), dtype=np.float64)

    def flag(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows whose score is above :attr:`threshold_`."""
        return np.asarray(self.score(frame) > self.threshold_)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """``(normal, anomaly)`` by :func:`proba_from_score` with the score's bound 1."""
        return proba_from_score(self.score(frame), self.threshold_, upper=1.0)


class SupervisedForestDetector:
    """A random forest classifier trained on labeled anomalies.

    When past anomalies have been labeled, a supervised model learns exactly what they looked
    like and usually beats unsupervised detectors on those kinds, at the price of missing kinds
    it has never seen. The score is the forest's mean vote for ``"anomaly"`` (in ``[0, 1]``),
    ``predict_proba`` is ``(1 - score, score)`` and a row is flagged when the score is above
    ``threshold``.

    Parameters
    ----------
    n_estimators
        Number of trees.
    min_samples_leaf
        Fewest training rows in a leaf.
    balanced
        Weight the classes inversely to their frequency in each bootstrap sample, so the rare
        anomalies count as much as the normal rows.
    threshold
        Vote share above which a row is flagged, in ``(0, 1)``. Only 0.5 keeps the flag equal
        to the most probable class.
    seed
        Seed of the bootstrap and feature sampling.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = pd.DataFrame(rng.normal(0.0, 1.0, size=(400, 2)), columns=["a", "b"])
    >>> y = (x["a"] > 1.5).astype(int)
    >>> detector = SupervisedForestDetector(n_estimators=50, seed=0).fit(x, y)
    >>> probe = pd.DataFrame({"a": [0.0, 3.0], "b": [0.0, 0.0]})
    >>> detector.flag(probe).tolist(), detector.score(probe).round(2).tolist()
    ([False, True], [0.0, 0.94])
    """

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        min_samples_leaf: int = 2,
        balanced: bool = True,
        threshold: float = 0.5,
        seed: int = 0,
    ) -> None:
        if n_estimators < 1:
            raise ConfigurationError(f"n_estimators must be at least 1, got {n_estimators}")
        if min_samples_leaf < 1:
            raise ConfigurationError(
                f"min_samples_leaf must be at least 1, got {min_samples_leaf}"
            )
        if not 0.0 < threshold < 1.0:
            raise ConfigurationError(f"threshold must be in (0, 1), got {threshold}")
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.balanced = balanced
        self.threshold = threshold
        self.seed = seed
        self.features_: tuple[str, ...] | None = None
        self.forest_: RandomForestClassifier | None = None

    def __repr__(self) -> str:
        return (
            f"SupervisedForestDetector(n_estimators={self.n_estimators}, "
            f"min_samples_leaf={self.min_samples_leaf}, balanced={self.balanced}, "
            f"threshold={self.threshold}, seed={self.seed})"
        )

    @property
    def classes(self) -> tuple[str, str]:
        return CLASSES

    def fit(self, frame: pd.DataFrame, y: Sequence[Any] | np.ndarray | None = None) -> Self:
        """Fit on ``frame``'s columns and the labels ``y`` (1, True or ``"anomaly"``)."""
        if y is None:
            raise DataError("SupervisedForestDetector needs labels: pass y (1 = anomaly)")
        features = _feature_names(frame)
        x = _columns(frame, features, "SupervisedForestDetector")
        labels = binary_labels(y)
        if len(labels) != len(x):
            raise DataError(f"got {len(labels)} labels for {len(x)} rows")
        if len(set(labels.tolist())) < 2:
            raise DataError("SupervisedForestDetector needs both normal and anomalous rows")
        forest = RandomForestClassifier(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            class_weight="balanced_subsample" if self.balanced else None,
            random_state=self.seed,
        )
        forest.fit(x, labels)
        self.features_ = features
        self.forest_ = forest
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The forest's vote share for ``"anomaly"``, in ``[0, 1]``."""
        x = _columns(frame, self.features_, "SupervisedForestDetector")
        assert self.forest_ is not None
        column = list(self.forest_.classes_).index(1)
        return np.asarray(self.forest_.predict_proba(x)[:, column], dtype=np.float64)

    def flag(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows whose score is above ``threshold``."""
        return np.asarray(self.score(frame) > self.threshold)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """``(1 - score, score)``."""
        p = self.score(frame)
        return np.column_stack([1.0 - p, p])
