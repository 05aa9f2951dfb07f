"""Model performance per window: realized from labels, and estimated before labels exist.

Long on purpose (600+ lines): realized and estimated metrics share one confusion algebra.

Realized metrics (accuracy, macro F1, Cohen's kappa, ROC AUC) come from labels and predictions
with plain NumPy; the confusion matrix behind the first three merges by addition.

Label-free estimation is confidence-based (CBPE): if the probabilities are calibrated, a row
predicted as class ``c`` with calibrated probability ``q`` of ``c`` is right with probability
``q``, so expected counts of true and false positives per class -- and from them accuracy,
F1 and ROC AUC -- follow from probabilities alone. The pieces:

* :class:`Calibrator` is fitted once on the reference: the holdout rows of a model bundle
  (``bundle.evaluation`` holds each row's label and the model's probability per class). It
  maps raw probabilities to calibrated ones (per-class isotonic regression).
* :class:`PerformanceSketch` is what the serving path keeps per time bucket and API worker:
  ``calibrator.sketch(proba)`` summarizes a micro-batch, and sketches merge by addition, so
  an estimate over any window costs O(classes**2 + classes * bins), not O(rows).
* :func:`estimate` turns a sketch into a :class:`PerformanceEstimate` with a confidence band,
  and :func:`compare` puts it next to the realized metrics once labels arrive.

The estimate is only as good as the calibration: it holds under covariate shift (the inputs
move, the relation between inputs and label does not) and fails under concept drift, which is
what the concept-drift detectors on the error stream are for.

When the model is misspecified, its calibration holds on average over the reference but not
where the traffic moves, and CBPE is optimistic. :class:`ImportanceWeightedAccuracy` re-weights
a labelled reference sample to the window (a doubly robust estimate from an outcome model and
a domain classifier's density ratio, falling back to CBPE where the weights are unreliable or
CBPE agrees). On issue 11's benchmark (``benchmarks/detection_concept.py --cbpe-only``) its
accuracy MAE is at worst 0.41x CBPE's on misspecified models and 1.00x on well-specified ones,
its band covering the realized accuracy in >= 92% of windows; so it is the monitor's default
(:mod:`driftline.monitoring.accuracy` chooses, and every report names the estimator).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from driftline.errors import DataError
from driftline.params import check_choice, check_integer, check_real

__all__ = [
    "Calibrator",
    "ImportanceWeightedAccuracy",
    "MetricComparison",
    "PerformanceEstimate",
    "PerformanceSketch",
    "RealizedMetrics",
    "WeightedEstimate",
    "compare",
    "confusion_matrix",
    "estimate",
    "metrics_from_confusion",
    "realized_metrics",
]

CALIBRATION_METHODS = ("isotonic", "none")


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python scalar it holds (JSON-safe labels)."""
    return value.item() if isinstance(value, np.generic) else value


# --- realized metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RealizedMetrics:
    """Metrics computed from labels.

    ``cohen_kappa`` is NaN when it is undefined (a single class in both labels and
    predictions), as in scikit-learn; ``roc_auc`` is None without probabilities or when a
    class is missing from the labels.
    """

    accuracy: float
    f1_macro: float
    cohen_kappa: float
    roc_auc: float | None
    n: int


def confusion_matrix(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    labels: Sequence[Any] | None = None,
) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Counts of (true, predicted) pairs; rows are true classes, columns predicted ones.

    ``labels`` fixes the classes and their order; by default the sorted union of both inputs.
    Confusion matrices of disjoint row sets add up to the matrix of their union.

    Parameters
    ----------
    y_true
        True labels.
    y_pred
        Predicted labels, aligned with ``y_true``.
    labels
        Classes in the order of the rows and columns; every label must be among them.

    Examples
    --------
    >>> cm, labels = confusion_matrix(["a", "b", "b", "c"], ["a", "b", "c", "c"])
    >>> cm.tolist(), labels
    ([[1, 0, 0], [0, 1, 1], [0, 0, 1]], ('a', 'b', 'c'))
    """
    truth = np.asarray(y_true).ravel()
    pred = np.asarray(y_pred).ravel()
    if truth.shape != pred.shape:
        raise DataError(f"y_true has {truth.size} labels but y_pred has {pred.size}")
    if labels is None:
        classes = np.unique(np.concatenate([truth, pred])) if truth.size else np.array([])
    else:
        classes = np.asarray(labels)
        if np.unique(classes).size != classes.size:
            raise DataError(f"labels repeat a class: {list(labels)!r}")
    k = classes.size
    order = np.argsort(classes, kind="stable")
    ordered = classes[order]

    def index(values: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(ordered, values), 0, max(k - 1, 0))
        if values.size and (k == 0 or np.any(ordered[pos] != values)):
            unknown = sorted({_plain(v) for v in values[ordered[pos] != values]}, key=str)
            raise DataError(f"labels {unknown!r} are not among {[_plain(c) for c in classes]!r}")
        return np.asarray(order[pos], dtype=np.int64)

    flat = index(truth) * k + index(pred)
    matrix = np.bincount(flat, minlength=k * k).reshape(k, k)
    return matrix, tuple(_plain(c) for c in classes)


def metrics_from_confusion(matrix: np.ndarray) -> tuple[float, float, float]:
    """Accuracy, macro F1 and Cohen's kappa of a confusion matrix.

    A class with no true and no predicted rows has F1 = 0 (scikit-learn's default). Kappa is
    NaN when chance agreement is total (one class only).

    Parameters
    ----------
    matrix
        Square counts, rows true classes, columns predicted classes.

    Examples
    --------
    >>> acc, f1, kappa = metrics_from_confusion(np.array([[40, 10], [5, 45]]))
    >>> round(acc, 4), round(f1, 4), round(kappa, 4)
    (0.85, 0.8496, 0.7)

    References
    ----------
    Jacob Cohen. A coefficient of agreement for nominal scales. Educational and Psychological
    Measurement 20(1), 37-46, 1960.
    """
    cm = np.asarray(matrix, dtype=np.float64)
    n = cm.sum()
    if n <= 0:
        raise DataError("no rows: metrics are undefined")
    tp = np.diag(cm)
    accuracy = float(tp.sum() / n)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    chance = float(np.dot(cm.sum(axis=1), cm.sum(axis=0)) / n**2)
    kappa = (accuracy - chance) / (1.0 - chance) if chance < 1.0 else math.nan
    return accuracy, float(f1.mean()), float(kappa)


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC, ties counted half (mid-ranks)."""
    ranks = stats.rankdata(score)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def realized_metrics(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    *,
    labels: Sequence[Any] | None = None,
    proba: np.ndarray | None = None,
) -> RealizedMetrics:
    """Accuracy, macro F1, Cohen's kappa and (given probabilities) ROC AUC of one window.

    Parameters
    ----------
    y_true
        True labels.
    y_pred
        Predicted labels.
    labels
        The classes (default: the sorted union of both inputs). With ``proba``, its columns
        follow ``labels``, which is then required.
    proba
        Probabilities per class; gives ROC AUC (of the second class for two classes,
        one-vs-rest macro average otherwise, as in scikit-learn).

    Examples
    --------
    >>> m = realized_metrics([0, 1, 1, 0], [0, 1, 0, 0], labels=[0, 1],
    ...                      proba=np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3]]))
    >>> m.accuracy, round(m.f1_macro, 4), m.cohen_kappa, m.roc_auc, m.n
    (0.75, 0.7333, 0.5, 1.0, 4)

    References
    ----------
    David J. Hand and Robert J. Till. A simple generalisation of the area under the ROC curve
    for multiple class classification problems. Machine Learning 45, 171-186, 2001.
    """
    matrix, classes = confusion_matrix(y_true, y_pred, labels)
    accuracy, f1, kappa = metrics_from_confusion(matrix)
    auc: float | None = None
    if proba is not None:
        if labels is None:
            raise DataError("proba needs labels: its columns follow them")
        scores = np.asarray(proba, dtype=np.float64)
        expected = (int(matrix.sum()), len(classes))
        if scores.shape != expected:
            raise DataError(f"proba has shape {scores.shape}; expected {expected}")
        truth, _ = _label_index(y_true, classes)
        present = np.bincount(truth, minlength=len(classes)) > 0
        if present.all() and len(classes) > 1:
            columns = [1] if len(classes) == 2 else range(len(classes))
            auc = float(np.mean([_binary_auc(truth == c, scores[:, c]) for c in columns]))
    return RealizedMetrics(
        accuracy=accuracy, f1_macro=f1, cohen_kappa=kappa, roc_auc=auc, n=int(matrix.sum())
    )


def _label_index(
    y: Sequence[Any] | np.ndarray, classes: Sequence[Any]
) -> tuple[np.ndarray, dict[str, int]]:
    """Column index of each label (labels are matched by their string form, as in a bundle)."""
    index = {str(c): i for i, c in enumerate(classes)}
    try:
        return np.array([index[str(v)] for v in np.asarray(y).ravel()], dtype=np.int64), index
    except KeyError as exc:
        raise DataError(f"label {exc.args[0]} is not among {list(classes)!r}") from None


# --- calibration --------------------------------------------------------------------------------


class Calibrator:
    """Per-class isotonic calibration of a classifier's probabilities, fitted on the reference.

    For two classes one isotonic regression maps the second column to P(y = second class); for
    more, one regression per class maps column ``c`` to P(y = c) and rows are renormalized to
    sum to one. The fitted maps are piecewise linear and stored as their knots, so applying
    them is ``numpy.interp`` and the calibrator serializes to a small JSON-safe dict.

    The calibrator also holds, per class, score bin edges at reference quantiles: the
    histogram behind the ROC AUC estimate of a :class:`PerformanceSketch`.

    Parameters
    ----------
    method
        ``"isotonic"``, or ``"none"`` to take the probabilities as they are (a baseline).
    n_bins
        Score bins per class for the ROC AUC estimate (>= 2).

    Examples
    --------
    A model that is overconfident: it says 0.9 where the truth is 0.75.

    >>> rng = np.random.default_rng(0)
    >>> p_true = rng.uniform(0.5, 1.0, 20_000)
    >>> proba_1 = 1 / (1 + np.exp(-2 * np.log(p_true / (1 - p_true))))  # twice the logit
    >>> y = (rng.random(20_000) < p_true).astype(int)
    >>> proba = np.column_stack([1 - proba_1, proba_1])
    >>> cal = Calibrator().fit(y, proba, classes=[0, 1])
    >>> print(np.round(cal.transform(np.array([[0.1, 0.9]])), 2))
    [[0.25 0.75]]

    References
    ----------
    Bianca Zadrozny and Charles Elkan. Transforming classifier scores into accurate multiclass
    probability estimates. KDD 2002, 694-699.
    """

    def __init__(self, *, method: str = "isotonic", n_bins: int = 200) -> None:
        check_choice("method", method, CALIBRATION_METHODS)
        self.method = method
        self.n_bins = check_integer("n_bins", n_bins, low=2)

    def __repr__(self) -> str:
        return f"Calibrator(method={self.method!r}, n_bins={self.n_bins!r})"

    # fitting

    def fit(
        self, y_true: Sequence[Any] | np.ndarray, proba: np.ndarray, classes: Sequence[Any]
    ) -> Calibrator:
        """Fit on reference labels and the model's probabilities (columns follow ``classes``)."""
        from sklearn.isotonic import IsotonicRegression  # noqa: PLC0415 — scikit-learn only when fitting

        labels = tuple(_plain(c) for c in classes)
        scores = self._check_proba(proba, len(labels))
        if len(labels) < 2:
            raise DataError(f"calibration needs two or more classes; got {list(labels)!r}")
        truth, _ = _label_index(y_true, labels)
        if truth.size != scores.shape[0]:
            raise DataError(f"{truth.size} labels for {scores.shape[0]} rows of probabilities")
        missing = [labels[c] for c in range(len(labels)) if not np.any(truth == c)]
        if missing:
            raise DataError(f"the reference has no rows of class(es) {missing!r}")
        columns = [1] if len(labels) == 2 else list(range(len(labels)))
        knots: list[tuple[list[float], list[float]]] = []
        for c in columns:
            if self.method == "none":
                knots.append(([0.0, 1.0], [0.0, 1.0]))
                continue
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(scores[:, c], (truth == c).astype(np.float64))
            knots.append(
                (
                    [float(v) for v in iso.X_thresholds_],
                    [float(v) for v in iso.y_thresholds_],
                )
            )
        quantiles = np.linspace(0.0, 1.0, self.n_bins + 1)[1:-1]
        self.classes_ = labels
        self.knots_ = knots
        self.edges_ = [
            [float(v) for v in np.quantile(scores[:, c], quantiles)] for c in range(len(labels))
        ]
        self.n_reference_ = int(scores.shape[0])
        return self

    @staticmethod
    def _check_proba(proba: np.ndarray, n_classes: int) -> np.ndarray:
        scores = np.asarray(proba, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[1] != n_classes:
            raise DataError(f"proba has shape {scores.shape}; expected (rows, {n_classes})")
        if not np.all(np.isfinite(scores)):
            raise DataError("proba holds NaN or infinite values")
        return scores

    def _fitted(self) -> None:
        if not hasattr(self, "knots_"):
            raise DataError("the calibrator is not fitted; call fit() on the reference first")

    # applying

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape; rows sum to one."""
        self._fitted()
        scores = self._check_proba(proba, len(self.classes_))
        if len(self.classes_) == 2:
            x, y = self.knots_[0]
            positive = np.interp(scores[:, 1], x, y)
            return np.column_stack([1.0 - positive, positive])
        out = np.column_stack(
            [np.interp(scores[:, c], x, y) for c, (x, y) in enumerate(self.knots_)]
        )
        total = out.sum(axis=1, keepdims=True)
        # A row every map sends to zero keeps its raw probabilities.
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), scores)

    def empty_sketch(self) -> PerformanceSketch:
        """The sketch of no rows (the zero of :meth:`PerformanceSketch.merge`)."""
        self._fitted()
        return PerformanceSketch.empty(len(self.classes_), self.n_bins, self.fingerprint)

    def sketch(self, proba: np.ndarray) -> PerformanceSketch:
        """Summarize a batch of the model's raw probabilities (columns follow ``classes_``).

        Predictions are the argmax of the raw probabilities (what the model answered); the
        expected correctness uses the calibrated ones.
        """
        self._fitted()
        raw = self._check_proba(proba, len(self.classes_))
        calibrated = self.transform(raw)
        k, rows = len(self.classes_), raw.shape[0]
        predicted = np.argmax(raw, axis=1)
        onehot = np.zeros((rows, k))
        onehot[np.arange(rows), predicted] = 1.0
        cross_predicted = (onehot * calibrated).T @ calibrated
        bins = np.column_stack(
            [
                np.searchsorted(np.asarray(self.edges_[c]), raw[:, c], side="right")
                for c in range(k)
            ]
        )
        flat = (np.arange(k) * self.n_bins)[None, :] + bins
        return PerformanceSketch(
            calibrator=self.fingerprint,
            n=rows,
            predicted=np.bincount(predicted, minlength=k).astype(np.int64),
            expected_correct=calibrated[np.arange(rows), predicted] @ onehot,
            probability_sum=calibrated.sum(axis=0),
            cross_predicted=cross_predicted,
            cross_all=calibrated.T @ calibrated,
            histogram_count=np.bincount(flat.ravel(), minlength=k * self.n_bins)
            .reshape(k, self.n_bins)
            .astype(np.int64),
            histogram_positive=np.bincount(
                flat.ravel(), weights=calibrated.ravel(), minlength=k * self.n_bins
            ).reshape(k, self.n_bins),
        )

    # persistence

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: configuration plus fitted knots and bin edges."""
        self._fitted()
        return {
            "method": self.method,
            "n_bins": self.n_bins,
            "classes": list(self.classes_),
            "knots": [[list(x), list(y)] for x, y in self.knots_],
            "edges": [list(e) for e in self.edges_],
            "n_reference": self.n_reference_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict`."""
        calibrator = cls(method=data["method"], n_bins=data["n_bins"])
        calibrator.classes_ = tuple(data["classes"])
        calibrator.knots_ = [
            ([float(v) for v in x], [float(v) for v in y]) for x, y in data["knots"]
        ]
        calibrator.edges_ = [[float(v) for v in e] for e in data["edges"]]
        calibrator.n_reference_ = int(data["n_reference"])
        if len(calibrator.edges_) != len(calibrator.classes_):
            raise DataError("calibrator dict has bin edges for a different number of classes")
        return calibrator

    @property
    def fingerprint(self) -> str:
        """Short hash of the fitted calibrator; only sketches with equal ones can merge.

        Kept while the fitted state is the same objects: every window sketch (one per
        micro-batch when serving) asks for it, and hashing the knots each time cost ~0.5% of
        the server's CPU under load. Refitting or assigning new knots or edges recomputes it.
        """
        self._fitted()
        key = (
            id(self.knots_),
            id(self.edges_),
            self.classes_,
            self.n_reference_,
            self.method,
            self.n_bins,
        )
        cached: tuple[Any, str] | None = self.__dict__.get("_fingerprint")
        if cached is None or cached[0] != key:
            text = json.dumps(self.to_dict(), sort_keys=True)
            cached = (key, hashlib.sha256(text.encode()).hexdigest()[:16])
            self._fingerprint = cached
        return cached[1]


# --- the mergeable sketch -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PerformanceSketch:
    """Sufficient statistics of calibrated probabilities over a set of rows; merges by addition.

    With ``q[i, c]`` the calibrated probability that row ``i`` is of class ``c`` and
    ``pred[i]`` the model's predicted class, per class ``c`` (``d`` a second class):

    * ``predicted[c]`` -- rows predicted ``c``;
    * ``expected_correct[c]`` -- sum of ``q[i, c]`` over rows predicted ``c`` (expected true
      positives);
    * ``probability_sum[c]`` -- sum of ``q[i, c]`` over all rows (expected rows of class ``c``);
    * ``cross_predicted[c, d]`` -- sum of ``q[i, c] * q[i, d]`` over rows predicted ``c``;
    * ``cross_all[c, d]`` -- sum of ``q[i, c] * q[i, d]`` over all rows (the two products give
      the variances behind the confidence band);
    * ``histogram_count[c, b]`` and ``histogram_positive[c, b]`` -- rows whose raw score for
      ``c`` falls in bin ``b`` of the calibrator's edges, and the sum of their ``q[i, c]``.

    Memory is O(classes**2 + classes * bins) whatever the number of rows.
    """

    calibrator: str
    n: int
    predicted: np.ndarray
    expected_correct: np.ndarray
    probability_sum: np.ndarray
    cross_predicted: np.ndarray
    cross_all: np.ndarray
    histogram_count: np.ndarray
    histogram_positive: np.ndarray

    _ARRAYS = (
        "predicted",
        "expected_correct",
        "probability_sum",
        "cross_predicted",
        "cross_all",
        "histogram_count",
        "histogram_positive",
    )
    _COUNTS = frozenset({"predicted", "histogram_count"})

    @classmethod
    def empty(cls, n_classes: int, n_bins: int, calibrator: str = "") -> PerformanceSketch:
        """The sketch of no rows."""
        k, b = n_classes, n_bins
        return cls(
            calibrator=calibrator,
            n=0,
            predicted=np.zeros(k, dtype=np.int64),
            expected_correct=np.zeros(k),
            probability_sum=np.zeros(k),
            cross_predicted=np.zeros((k, k)),
            cross_all=np.zeros((k, k)),
            histogram_count=np.zeros((k, b), dtype=np.int64),
            histogram_positive=np.zeros((k, b)),
        )

    @property
    def n_classes(self) -> int:
        return int(self.predicted.size)

    def merge(self, other: PerformanceSketch) -> PerformanceSketch:
        """The sketch of the union of both row sets (time buckets, API workers)."""
        if other.calibrator != self.calibrator:
            raise DataError(
                f"cannot merge sketches of calibrators {self.calibrator!r} and {other.calibrator!r}"
            )
        if other.histogram_count.shape != self.histogram_count.shape:
            raise DataError("cannot merge sketches of different shapes")
        return PerformanceSketch(
            calibrator=self.calibrator,
            n=self.n + other.n,
            **{name: getattr(self, name) + getattr(other, name) for name in self._ARRAYS},
        )

    __add__ = merge

    def equals(self, other: PerformanceSketch, *, rtol: float = 0.0) -> bool:
        """Same calibrator and counts, and sums equal within ``rtol``."""
        if (self.calibrator, self.n) != (other.calibrator, other.n):
            return False
        for name in self._ARRAYS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.shape != theirs.shape:
                return False
            if name in self._COUNTS:
                if not np.array_equal(mine, theirs):
                    return False
            elif not np.allclose(mine, theirs, rtol=rtol, atol=1e-9 if rtol else 0.0):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (floats written exactly)."""
        out: dict[str, Any] = {"calibrator": self.calibrator, "n": self.n}
        for name in self._ARRAYS:
            out[name] = getattr(self, name).tolist()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceSketch:
        """Rebuild a sketch from :meth:`to_dict`."""
        arrays = {
            name: np.asarray(data[name], dtype=np.int64 if name in cls._COUNTS else np.float64)
            for name in cls._ARRAYS
        }
        k = arrays["predicted"].size
        if arrays["cross_all"].shape != (k, k) or arrays["histogram_count"].ndim != 2:
            raise DataError("sketch dict has inconsistent shapes")
        return cls(calibrator=str(data["calibrator"]), n=int(data["n"]), **arrays)


# --- the estimate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceEstimate:
    """Estimated metrics of a window, with a confidence band for accuracy and macro F1.

    The band is where the realized metric should fall if the calibration holds: the number of
    correct predictions is a sum of independent Bernoulli variables with the calibrated
    confidences as probabilities (a Poisson-binomial), whose variance is exact; macro F1's
    variance is its first-order (delta-method) expansion in the per-row labels. The band does
    not cover calibration error itself (a reference too small, or concept drift).
    """

    accuracy: float
    accuracy_lower: float
    accuracy_upper: float
    f1_macro: float
    f1_lower: float
    f1_upper: float
    roc_auc: float | None
    n: int
    confidence: float


def estimate(sketch: PerformanceSketch, *, confidence: float = 0.95) -> PerformanceEstimate:
    """CBPE: expected accuracy, macro F1 and ROC AUC of the rows a sketch summarizes.

    Accuracy is the mean calibrated confidence in the predicted class. Per class, expected
    true positives ``T``, predicted rows ``m`` and expected class rows ``N`` give
    ``F1 = 2T / (m + N)``. ROC AUC (second class for two classes, one-vs-rest macro otherwise)
    counts, over the score histogram, expected positive-negative pairs in order, ties within a
    bin counted half and the impossible pairing of a row with itself removed. Cost:
    O(classes**2 + classes * bins).

    Parameters
    ----------
    sketch
        A non-empty sketch.
    confidence
        Coverage of the band, in (0, 1).

    Examples
    --------
    A calibrated binary model on 5,000 rows:

    >>> rng = np.random.default_rng(1)
    >>> p = rng.beta(2, 2, 5_000)
    >>> proba = np.column_stack([1 - p, p])
    >>> y = (rng.random(5_000) < p).astype(int)
    >>> cal = Calibrator(method="none").fit(y, proba, classes=[0, 1])
    >>> est = estimate(cal.sketch(proba))
    >>> real = realized_metrics(y, proba.argmax(axis=1), labels=[0, 1], proba=proba)
    >>> print(f"{est.accuracy:.3f} [{est.accuracy_lower:.3f}, {est.accuracy_upper:.3f}]"
    ...       f" realized {real.accuracy:.3f}")
    0.690 [0.677, 0.702] realized 0.687
    >>> print(f"AUC {est.roc_auc:.3f} realized {real.roc_auc:.3f}")
    AUC 0.759 realized 0.760

    References
    ----------
    NannyML. Confidence-based performance estimation (CBPE), 2022.
    https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html
    Yuan Wang. On the number of successes in independent trials. Statistica Sinica 3(2),
    295-312, 1993 (the Poisson-binomial distribution).
    """
    level = check_real("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    if sketch.n <= 0:
        raise DataError("the sketch holds no rows: nothing to estimate")
    n = float(sketch.n)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    k = sketch.n_classes
    tp, m, s = sketch.expected_correct, sketch.predicted.astype(np.float64), sketch.probability_sum
    r, full = sketch.cross_predicted, sketch.cross_all

    accuracy = float(tp.sum() / n)
    acc_sd = math.sqrt(max(float(tp.sum() - np.trace(r)), 0.0)) / n

    denominator = m + s
    safe = np.where(denominator > 0, denominator, 1.0)
    f1_per_class = np.where(denominator > 0, 2.0 * tp / safe, 0.0)
    f1 = float(f1_per_class.mean())
    # Gradient of macro F1 in each class's true positives (g_t) and class size (g_n).
    g_t = np.where(denominator > 0, 2.0 / (k * safe), 0.0)
    g_n = np.where(denominator > 0, -2.0 * tp / (k * safe**2), 0.0)
    second = float(np.sum(g_n**2 * s) + np.sum((g_t**2 + 2.0 * g_t * g_n) * tp))
    first = float(g_n @ full @ g_n + np.sum(g_t**2 * np.diag(r)) + 2.0 * g_t @ (r @ g_n))
    f1_sd = math.sqrt(max(second - first, 0.0))

    return PerformanceEstimate(
        accuracy=accuracy,
        accuracy_lower=max(0.0, accuracy - z * acc_sd),
        accuracy_upper=min(1.0, accuracy + z * acc_sd),
        f1_macro=f1,
        f1_lower=max(0.0, f1 - z * f1_sd),
        f1_upper=min(1.0, f1 + z * f1_sd),
        roc_auc=_estimated_auc(sketch),
        n=sketch.n,
        confidence=level,
    )


def _estimated_auc(sketch: PerformanceSketch) -> float | None:
    k = sketch.n_classes
    values: list[float] = []
    for c in [1] if k == 2 else range(k):
        positive = sketch.histogram_positive[c]
        negative = sketch.histogram_count[c] - positive
        # A row is never paired with itself: remove sum q(1 - q) from pairs and from ties.
        self_pairs = float(sketch.probability_sum[c] - sketch.cross_all[c, c])
        pairs = float(positive.sum() * negative.sum()) - self_pairs
        if pairs <= 0:
            return None
        below = np.cumsum(negative) - negative
        ordered = float(positive @ below) + 0.5 * (float(positive @ negative) - self_pairs)
        values.append(ordered / pairs)
    return float(np.mean(values))


# --- estimated next to realized -------------------------------------------------------------


@dataclass(frozen=True)
class MetricComparison:
    """One metric, estimated (with its band) next to realized once labels exist."""

    metric: str
    estimated: float | None
    lower: float | None
    upper: float | None
    realized: float | None

    @property
    def error(self) -> float | None:
        """Estimated minus realized."""
        if self.estimated is None or self.realized is None:
            return None
        return self.estimated - self.realized

    @property
    def within_band(self) -> bool | None:
        """Whether the realized value lies in the band (None without a band or labels)."""
        if self.lower is None or self.upper is None or self.realized is None:
            return None
        return self.lower <= self.realized <= self.upper


def compare(
    estimated: PerformanceEstimate, realized: RealizedMetrics | None
) -> list[MetricComparison]:
    """Accuracy, macro F1 and ROC AUC side by side (realized is None before labels arrive).

    >>> est = PerformanceEstimate(0.9, 0.88, 0.92, 0.8, 0.77, 0.83, None, 1000, 0.95)
    >>> real = RealizedMetrics(0.87, 0.8, 0.6, None, 1000)
    >>> [(c.metric, c.within_band) for c in compare(est, real)]
    [('accuracy', False), ('f1_macro', True), ('roc_auc', None)]
    """
    return [
        MetricComparison(
            "accuracy",
            estimated.accuracy,
            estimated.accuracy_lower,
            estimated.accuracy_upper,
            None if realized is None else realized.accuracy,
        ),
        MetricComparison(
            "f1_macro",
            estimated.f1_macro,
            estimated.f1_lower,
            estimated.f1_upper,
            None if realized is None else realized.f1_macro,
        ),
        MetricComparison(
            "roc_auc", estimated.roc_auc, None, None, None if realized is None else realized.roc_auc
        ),
    ]


# --- accuracy that survives a wrong model: importance weighting -----------------------------


@dataclass(frozen=True)
class WeightedEstimate:
    """An accuracy estimate and which estimator produced it.

    ``estimator`` is ``"doubly_robust"`` (the outcome model's mean over the window corrected by
    the importance-weighted residual), ``"importance_weighting"`` (the plain weighted mean of
    correctness) or ``"cbpe"`` (the calibration holds where the traffic is, or the weights are
    unreliable); ``effective_sample_size`` is Kish's ``(sum w)**2 / sum w**2`` of the
    reference weights times the share of the window the reference covers. The band is for the
    window's realized accuracy.
    """

    accuracy: float
    accuracy_lower: float
    accuracy_upper: float
    estimator: str
    effective_sample_size: float | None
    n: int
    #: Why this estimator's number was returned (for reports: a CBPE fallback says why).
    reason: str = ""


class ImportanceWeightedAccuracy:
    """Accuracy of a window from the labelled reference, re-weighted to the window's inputs.

    Under covariate shift the chance that the model is right at ``x`` does not change, only
    how often each ``x`` comes. Two pieces, each fitted with cross-fitting (a row's own
    prediction never comes from a fit that saw it):

    * an **outcome model** ``m(x)`` of that chance, fitted once on the reference: gradient
      boosting of "the model was right" on the features and the calibrated confidence
      (``outcome="boosting"``, ``folds`` folds), or the calibrated confidence itself
      (``outcome="calibration"``, which is CBPE's own model);
    * a **density ratio** ``w(x) = p_window(x) / p_reference(x)`` per window, from a domain
      classifier of reference rows against window rows (``domain="boosting"``: histogram
      gradient boosting, two folds; ``domain="logistic"``: logistic regression on the
      standardized features and their squares, exact for Gaussian shifts of mean and scale),
      ``w = P(window | x) / P(reference | x) * n_reference / n_window``, clipped at
      ``max_weight`` times the mean.

    The *doubly robust* estimate is the window's mean of ``m(x)`` plus the importance-weighted
    mean of the reference's residuals ``correct - m(x)``: right if either piece is. Given the
    window's CBPE estimate (``fallback``), CBPE stands unless the doubly robust estimate
    differs from it by more than ``correction_z`` standard errors of the weighted residual
    (where the calibration holds, CBPE is the more precise); when few reference rows look like
    the window (the effective sample size below ``min_ess``) the weights are not trusted and
    CBPE is returned with its own band. The effective sample size is Kish's ``(sum w)**2 /
    sum w**2``, times the share of the window the reference covers (the mean raw ratio over
    the reference rows, 1 when every region of the window has reference rows): a window far
    from every reference row gets near-equal, tiny raw ratios, which Kish's formula alone
    would take for a perfect match. Without a fallback the doubly robust estimate is
    returned; with ``outcome="calibration"`` and no confidences, the plain importance-weighted
    mean of correctness.

    The band is for the *realized* accuracy of the window: the window's own sampling noise
    (a Poisson-binomial with the rows' ``m(x)`` as probabilities) plus the estimator's error,
    taken as the variance of the weighted residual mean (self-normalized importance sampling,
    delta method) and the spread between the fold models of ``m``. Where the estimators at hand
    (CBPE, the doubly robust one, plain importance weighting) disagree by more than that, the
    band spans all of them: their disagreement is the honest size of what is not known.

    Parameters
    ----------
    min_ess
        Smallest effective sample size of the weights to trust them (>= 1).
    max_weight
        Weights are clipped at this multiple of their mean (> 1).
    max_rows
        Rows of each side a domain classifier is fitted on, at most (>= 100).
    correction_z
        With a CBPE fallback, the doubly robust estimate replaces it when the two differ by
        more than this many standard errors of the weighted residual (>= 0).
    domain
        The domain classifier: ``"boosting"`` (default) or ``"logistic"``.
    outcome
        The outcome model: ``"boosting"`` (default) or ``"calibration"``.
    folds
        Cross-fitting folds of the outcome model (>= 2).
    seed
        Seed of the subsampling, the folds and the boosting (>= 0).

    Examples
    --------
    A linear model on a circular concept; the traffic moves toward where it fails:

    >>> rng = np.random.default_rng(0)
    >>> def concept(x):
    ...     return (rng.random(len(x)) < 1 / (1 + np.exp(4 * ((x**2).sum(1) - 1.5)))).astype(int)
    >>> x_ref = rng.normal(size=(5000, 2))
    >>> predicted = (x_ref[:, 0] < 0.8).astype(int)       # a poor, fixed model
    >>> iw = ImportanceWeightedAccuracy().fit(x_ref, predicted == concept(x_ref))
    >>> x_new = rng.normal(size=(5000, 2)) * 0.8 + [0.6, 0.0]
    >>> est = iw.estimate(x_new)
    >>> realized = float(((x_new[:, 0] < 0.8).astype(int) == concept(x_new)).mean())
    >>> est.estimator, round(est.accuracy, 2), round(realized, 2)
    ('doubly_robust', 0.77, 0.77)

    References
    ----------
    Masashi Sugiyama, Matthias Krauledat and Klaus-Robert Müller. Covariate shift adaptation
    by importance weighted cross validation. JMLR 8, 985-1005, 2007. Steffen Bickel, Michael
    Brückner and Tobias Scheffer. Discriminative learning under covariate shift. JMLR 10,
    2137-2155, 2009 (the density ratio from a domain classifier). James M. Robins, Andrea
    Rotnitzky and Lue Ping Zhao. Estimation of regression coefficients when some regressors
    are not always observed. JASA 89(427), 846-866, 1994 (doubly robust estimation). Victor
    Chernozhukov et al. Double/debiased machine learning for treatment and structural
    parameters. The Econometrics Journal 21(1), C1-C68, 2018 (cross-fitting). Leslie Kish.
    Survey Sampling, Wiley, 1965 (the effective sample size).
    """

    def __init__(
        self,
        *,
        min_ess: float = 200.0,
        max_weight: float = 50.0,
        max_rows: int = 5000,
        correction_z: float = 3.0,
        domain: str = "boosting",
        outcome: str = "boosting",
        folds: int = 5,
        seed: int = 0,
    ) -> None:
        check_choice("domain", domain, ("logistic", "boosting"))
        check_choice("outcome", outcome, ("boosting", "calibration"))
        self.domain = domain
        self.outcome = outcome
        self.folds = check_integer("folds", folds, low=2)
        self.correction_z = check_real("correction_z", correction_z, low=0.0)
        self.min_ess = check_real("min_ess", min_ess, low=1.0)
        self.max_weight = check_real("max_weight", max_weight, low=1.0, low_open=True)
        self.max_rows = check_integer("max_rows", max_rows, low=100)
        self.seed = check_integer("seed", seed, low=0)
        self._x: np.ndarray | None = None
        self._correct: np.ndarray | None = None
        self._confidence: np.ndarray | None = None
        self._models: list[Any] = []
        self._oof: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"ImportanceWeightedAccuracy(min_ess={self.min_ess!r}, max_weight="
            f"{self.max_weight!r}, max_rows={self.max_rows!r}, correction_z="
            f"{self.correction_z!r}, domain={self.domain!r}, outcome={self.outcome!r}, "
            f"folds={self.folds!r}, seed={self.seed!r})"
        )

    def _booster(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415 — scikit-learn only when fitting

        return HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            random_state=self.seed,
        )

    def fit(
        self, x_reference: Any, correct: Any, confidence: Any | None = None
    ) -> ImportanceWeightedAccuracy:
        """Keep the labelled reference: its features, whether the model was right, and (for
        CBPE's outcome model, and as a feature of the boosted one) the calibrated confidence
        in each predicted class; fit the outcome model."""
        x = np.asarray(x_reference, dtype=np.float64)
        c = np.asarray(correct, dtype=np.float64).ravel()
        if x.ndim != 2 or x.shape[0] != c.size or c.size < 2:
            raise DataError(
                f"x_reference must be 2-D with one row per correctness flag; got shape "
                f"{x.shape} and {c.size} flags"
            )
        # Gradient boosting routes missing values (NaN) on its own; the logistic domain
        # classifier and the squared design need finite values.
        allowed = np.isfinite(x) | (np.isnan(x) if self.domain == "boosting" else False)
        if not np.all(allowed):
            raise DataError(
                "x_reference holds infinite values"
                if self.domain == "boosting"
                else "x_reference holds NaN or infinite values"
            )
        if not np.isin(c, (0.0, 1.0)).all():
            raise DataError("correct holds values other than 0/1 (or False/True)")
        if confidence is not None:
            q = np.asarray(confidence, dtype=np.float64).ravel()
            if q.size != c.size or not ((q >= 0) & (q <= 1)).all():
                raise DataError("confidence needs one probability in [0, 1] per reference row")
            self._confidence = q
        else:
            self._confidence = None
        self._x, self._correct = x, c
        # Mean and spread of the present values (a column of missing values only: 0 and 1).
        present = np.isfinite(x)
        count = np.maximum(present.sum(axis=0), 1)
        filled = np.where(present, x, 0.0)
        self._mean = filled.sum(axis=0) / count
        std = np.sqrt((np.where(present, x - self._mean, 0.0) ** 2).sum(axis=0) / count)
        self._scale = np.where(std > 0, std, 1.0)
        self._models, self._oof = [], None
        if self.outcome == "boosting":
            features = self._features(x, self._confidence)
            fold = np.random.default_rng(self.seed).permutation(c.size) % self.folds
            oof = np.empty(c.size)
            for k in range(self.folds):
                train = fold != k
                if np.unique(c[train]).size < 2:  # always right (or wrong) there: a constant
                    model: Any = float(c[train].mean())
                    oof[~train] = model
                else:
                    model = self._booster().fit(features[train], c[train])
                    oof[~train] = model.predict_proba(features[~train])[:, 1]
                self._models.append(model)
            self._oof = oof
        return self

    @staticmethod
    def _features(x: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        return x if confidence is None else np.column_stack([x, confidence])

    def _outcome_per_fold(self, x_window: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        """``m(x)`` of every window row by every fold model: shape (folds, rows)."""
        features = self._features(x_window, confidence)
        rows = len(x_window)
        return np.array(
            [
                np.full(rows, m) if isinstance(m, float) else m.predict_proba(features)[:, 1]
                for m in self._models
            ]
        )

    def _design(self, x: np.ndarray) -> np.ndarray:
        z = (x - self._mean) / self._scale
        return np.hstack([z, z**2])

    def weights(self, x_window: Any) -> np.ndarray:
        """Density-ratio weights of the reference rows for this window (mean 1)."""
        return self._weights(x_window)[0]

    def _weights(self, x_window: Any) -> tuple[np.ndarray, float]:
        """The weights, and the mean of the raw ratio over the reference rows: the share of
        the window that lies where the reference has rows (1 when it all does; near 0 when
        the window sits where no reference row is, and the weights mean nothing)."""
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 — scikit-learn only when fitting

        if self._x is None:
            raise DataError("fit the estimator on the reference first")
        xw = np.asarray(x_window, dtype=np.float64)
        if xw.ndim != 2 or xw.shape[1] != self._x.shape[1]:
            raise DataError(
                f"x_window must have {self._x.shape[1]} columns; got shape {xw.shape}"
            )
        if self.domain == "logistic" and not np.isfinite(xw).all():
            raise DataError("x_window holds NaN or infinite values (a logistic domain needs none)")
        rng = np.random.default_rng(self.seed)
        ref = self._x
        if self.domain == "logistic":
            if len(ref) > self.max_rows:
                ref = ref[rng.choice(len(ref), self.max_rows, replace=False)]
            if len(xw) > self.max_rows:
                xw = xw[rng.choice(len(xw), self.max_rows, replace=False)]
            target = np.r_[np.zeros(len(ref)), np.ones(len(xw))]
            design = self._design(np.vstack([ref, xw]))
            domain = LogisticRegression(C=1.0, max_iter=1000).fit(design, target)
            log_ratio = domain.decision_function(self._design(self._x)) + math.log(
                len(ref) / len(xw)
            )
        else:
            # Two folds: each reference row's ratio comes from the classifier that did not
            # see it (a classifier scores its own training rows as more typical than they are).
            ref_fold = rng.permutation(len(ref)) % 2
            win_fold = rng.permutation(len(xw)) % 2
            log_ratio = np.empty(len(ref))
            half = max(self.max_rows // 2, 50)
            for k in (0, 1):
                r_train, w_train = ref[ref_fold != k], xw[win_fold != k]
                if len(r_train) > half:
                    r_train = r_train[rng.choice(len(r_train), half, replace=False)]
                if len(w_train) > half:
                    w_train = w_train[rng.choice(len(w_train), half, replace=False)]
                booster = self._booster().fit(
                    np.vstack([r_train, w_train]),
                    np.r_[np.zeros(len(r_train)), np.ones(len(w_train))],
                )
                p = np.clip(booster.predict_proba(ref[ref_fold == k])[:, 1], 1e-6, 1 - 1e-6)
                log_ratio[ref_fold == k] = np.log(p / (1 - p)) + math.log(
                    len(r_train) / len(w_train)
                )
        w = np.exp(np.clip(log_ratio, -50.0, 50.0))
        covered = float(w.mean())
        w /= covered
        w = np.minimum(w, self.max_weight)
        out: np.ndarray = w / w.mean()
        return out, covered

    def estimate(
        self,
        x_window: Any,
        fallback: PerformanceEstimate | None = None,
        *,
        window_confidence: Any | None = None,
        window_rows: int | None = None,
        confidence: float = 0.95,
    ) -> WeightedEstimate:
        """The window's accuracy (see the class docstring for which estimate is used).

        ``fallback`` is the window's CBPE estimate; ``window_confidence`` the calibrated
        confidence of each window row's predicted class (needed when :meth:`fit` was given
        confidences and the outcome model is boosted: it is one of its features).

        ``window_rows`` is the number of rows of the whole window when ``x_window`` is a
        uniform sample of it (the monitor keeps a bounded sample per time bucket). With a
        CBPE fallback over the whole window and the boosted outcome model, the window's mean
        of ``m(x)`` is then CBPE's exact mean confidence plus the sample's mean of ``m(x) -
        confidence`` (a control variate: the two move together, so their difference varies
        far less than ``m(x)`` alone), and the band adds that mean's sampling variance. With
        the whole window (``window_rows`` None or the sample's size) nothing changes."""
        level = check_real(
            "confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True
        )
        w, covered = self._weights(x_window)
        xw = np.asarray(x_window, dtype=np.float64)
        n_sample = int(xw.shape[0])
        n_window = n_sample if window_rows is None else int(window_rows)
        if n_window < n_sample:
            raise DataError(f"window_rows={n_window} is below the sample's {n_sample} rows")
        assert self._correct is not None
        c = self._correct
        ess = float(w.sum() ** 2 / np.sum(w**2)) * min(1.0, covered)
        z = float(stats.norm.ppf(0.5 + level / 2.0))
        if fallback is not None and ess < self.min_ess:
            return WeightedEstimate(
                fallback.accuracy,
                fallback.accuracy_lower,
                fallback.accuracy_upper,
                "cbpe",
                ess,
                n_window,
                f"importance weights unreliable: effective sample size {ess:.0f} < "
                f"{self.min_ess:g} reference rows",
            )
        sw = float(w.sum())

        def weighted_mean(values: np.ndarray) -> tuple[float, float]:
            mean = float(np.sum(w * values) / sw)
            return mean, math.sqrt(float(np.sum(w**2 * (values - mean) ** 2))) / sw

        plain, plain_se = weighted_mean(c)
        candidates = [plain]
        if self._oof is not None:
            q_window = None
            if self._confidence is not None:
                if window_confidence is None:
                    raise DataError(
                        "window_confidence is needed: the outcome model was fitted with the "
                        "reference's confidences as a feature"
                    )
                q_window = np.asarray(window_confidence, dtype=np.float64).ravel()
                if q_window.size != n_sample:
                    raise DataError(
                        f"window_confidence has {q_window.size} values for {n_sample} rows"
                    )
            per_fold = self._outcome_per_fold(xw, q_window)
            m = per_fold.mean(axis=0)
            bias, se = weighted_mean(c - self._oof)
            # Share of the window the sample leaves out (finite-population correction).
            unseen = 1.0 - n_sample / n_window
            if unseen > 0 and fallback is not None and q_window is not None and n_sample > 1:
                gap = m - q_window
                mean_m = fallback.accuracy + float(gap.mean())
                var_sample = float(gap.var(ddof=1)) / n_sample * unseen
            elif unseen > 0 and n_sample > 1:
                mean_m = float(m.mean())
                var_sample = float(m.var(ddof=1)) / n_sample * unseen
            else:
                mean_m, var_sample = float(m.mean()), 0.0
            robust = mean_m + bias
            # The fold models' disagreement on this window: what the outcome model is unsure of.
            spread = float(per_fold.mean(axis=1).std(ddof=1))
            # The realized accuracy's own noise: a Poisson-binomial over the window's rows.
            var_window = float(np.mean(m * (1.0 - m))) / n_window
            sd = math.sqrt(var_window + var_sample + se**2 + spread**2)
            candidates.append(robust)
        elif self._confidence is not None and fallback is not None:
            var_sample = 0.0  # CBPE's own mean is over the whole window
            bias, se = weighted_mean(c - self._confidence)
            robust = fallback.accuracy + bias
            var_window = robust * (1.0 - robust) / n_window
            sd = math.sqrt(var_window + se**2)
            candidates.append(robust)
        else:
            var_window = plain * (1.0 - plain) / n_window
            sd = math.sqrt(var_window + plain_se**2)
            return WeightedEstimate(
                plain,
                max(0.0, plain - z * sd),
                min(1.0, plain + z * sd),
                "importance_weighting",
                ess,
                n_window,
                "importance-weighted mean of the reference's correctness (no outcome model)",
            )
        if fallback is not None:
            candidates.append(fallback.accuracy)
            # The gap's noise: the weighted residual's, plus the window sample's (zero when
            # the whole window was given).
            gate = math.sqrt(se**2 + var_sample)
            gap_se = abs(robust - fallback.accuracy) / gate if gate > 0 else math.inf
            if abs(robust - fallback.accuracy) <= self.correction_z * gate:
                accuracy, name = fallback.accuracy, "cbpe"  # the calibration holds there
                reason = (
                    f"the doubly robust estimate is within {gap_se:.1f} <= "
                    f"{self.correction_z:g} standard errors of CBPE's: the calibration holds "
                    f"where the traffic is, and CBPE is the more precise"
                )
            else:
                accuracy, name = robust, "doubly_robust"
                reason = (
                    f"CBPE is {gap_se:.1f} standard errors from the doubly robust estimate "
                    f"(> {self.correction_z:g}): the calibration does not hold where the "
                    f"traffic moved (effective sample size {ess:.0f})"
                )
        else:
            accuracy, name = robust, "doubly_robust"
            reason = "no CBPE estimate to compare with"
        accuracy = min(1.0, max(0.0, accuracy))
        return WeightedEstimate(
            accuracy,
            max(0.0, min(candidates) - z * sd),
            min(1.0, max(candidates) + z * sd),
            name,
            ess,
            n_window,
            reason,
        )
