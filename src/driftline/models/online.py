"""river's Adaptive Random Forest behind the :class:`~driftline.models.base.Model` protocol: a
model that keeps learning, one labelled row at a time.

:class:`ARFModel` takes the same records and frames as the scikit-learn models (validated
records, or :meth:`FeatureSchema.to_frame` frames), answers probabilities over a fixed tuple of
classes, learns with :meth:`ARFModel.learn_one`, pickles (so it is saved in a bundle like any
other kind, as ``kind="arf"``), and is safe to predict from while another thread learns.

:func:`continue_training` is how a challenger is trained from an online champion: a copy of
the champion in which a share of the trees is replaced by fresh ones, then trained on the new
rows. :func:`driftline.training.continue_training_bundle` does the same for a whole version
(split, evaluation, monitoring reference), as ``driftline train`` does for a new one; it lives
there because it trains through :func:`~driftline.training.train_model`, so this module never
imports the training module that imports it.

The module keeps its name although ``service/online_learning.py`` is about online models too:
saved ``arf`` versions are pickles that name ``driftline.models.online.ARFModel``.
"""

from __future__ import annotations

import math
import pickle
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from river import compose, forest, preprocessing, stats

from driftline.errors import ConfigurationError, DataError
from driftline.schema import FeatureSchema, label_text

__all__ = [
    "MISSING_CATEGORY",
    "ONLINE_KIND",
    "ARFModel",
    "continue_training",
]

#: The bundle kind (and ``driftline train --model``) of :class:`ARFModel`.
ONLINE_KIND: Final = "arf"
#: The category a missing categorical value is encoded as.
MISSING_CATEGORY: Final = "__missing__"

RowsProgress = Callable[[int, int], None]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class ARFModel:
    """An Adaptive Random Forest classifier on the features of a schema, learning online.

    Each row goes through a river pipeline before the forest: numeric and boolean features
    (booleans as 0/1) get missing values replaced by their running mean; categorical features
    get missing values replaced by :data:`MISSING_CATEGORY` and are one-hot encoded, the
    encoder learning categories unseen in training as they come. Numeric features are not
    standardized: Hoeffding trees are insensitive to the scale of a feature, while a running
    scaler would keep moving under every split threshold the trees have already learned.

    The forest is river's ``forest.ARFClassifier``: each tree learns each row with a
    Poisson(``lambda_value``) weight, samples ``max_features`` features at each split, and has
    its own ADWIN drift detector (a warning starts a background tree, a drift swaps it in).

    Predicting and learning take a lock, so serving threads can predict while a background
    thread learns; a call holds it for one row (learning) or one batch (predicting).

    Parameters
    ----------
    schema
        The features the model takes (its target and classes too).
    classes
        The class labels, in the column order of :meth:`predict_proba`; default
        ``schema.classes``. Labels outside them are refused by :meth:`learn_one`.
    n_models
        Number of trees.
    max_features
        Features sampled at each split: ``"sqrt"``, ``"log2"`` (of the encoded features) or a
        count.
    lambda_value
        Rate of the Poisson weight of each row in each tree (online bagging).
    grace_period
        Rows a leaf sees between split attempts.
    seed
        Seed of the forest (Poisson weights and feature sampling).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.normal(size=600), "city": rng.choice(["a", "b"], 600)})
    >>> frame["y"] = (frame["x"] > 0).astype(int)
    >>> from driftline.schema import infer_schema
    >>> model = ARFModel(infer_schema(frame, "y"), n_models=3, seed=0)
    >>> model.learn_many(frame.drop(columns="y"), frame["y"])
    600
    >>> model.classes, model.n_learned
    ((0, 1), 600)
    >>> model.predict_proba_records([{"x": 2.0, "city": "a"}, {"x": -2.0, "city": None}]).round(2)
    array([[0.11, 0.89],
           [0.87, 0.13]])

    References
    ----------
    Gomes, H. M., Bifet, A., Read, J., Barddal, J. P., Enembreck, F., Pfharinger, B.,
    Holmes, G. and Abdessalem, T. (2017). Adaptive random forests for evolving data stream
    classification. *Machine Learning*, 106(9–10), 1469–1495.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        classes: Sequence[Any] | None = None,
        n_models: int = 10,
        max_features: str | int = "sqrt",
        lambda_value: int = 6,
        grace_period: int = 50,
        seed: int = 0,
    ) -> None:
        chosen = tuple(_plain(c) for c in (schema.classes if classes is None else classes))
        if len(chosen) < 2:
            raise ConfigurationError(f"classes must hold at least two labels, got {chosen!r}")
        if len({label_text(c) for c in chosen}) != len(chosen):
            raise ConfigurationError(f"classes must be distinct labels, got {chosen!r}")
        if not schema.features:
            raise ConfigurationError("schema must have at least one feature")
        if n_models < 1:
            raise ConfigurationError(f"n_models must be at least 1, got {n_models}")
        if isinstance(max_features, str) and max_features not in ("sqrt", "log2"):
            raise ConfigurationError(
                f"max_features must be 'sqrt', 'log2' or a count, got {max_features!r}"
            )
        if isinstance(max_features, int) and max_features < 1:
            raise ConfigurationError(f"max_features as a count must be >= 1, got {max_features}")
        if lambda_value < 1:
            raise ConfigurationError(f"lambda_value must be at least 1, got {lambda_value}")
        if grace_period < 1:
            raise ConfigurationError(f"grace_period must be at least 1, got {grace_period}")
        self.schema = schema
        self.n_models = n_models
        self.max_features = max_features
        self.lambda_value = lambda_value
        self.grace_period = grace_period
        self.seed = seed
        self._classes = chosen
        self._column = {label_text(c): j for j, c in enumerate(chosen)}
        self._numeric = tuple(f.name for f in schema.features if f.kind != "categorical")
        self._categorical = tuple(f.name for f in schema.features if f.kind == "categorical")
        self.pipeline = self._build_pipeline()
        #: Rows learned since construction (training included).
        self.n_learned = 0
        #: Indices of the trees :func:`continue_training` replaced (empty for a fresh model).
        self.renewed_trees: tuple[int, ...] = ()
        self._lock = threading.RLock()

    def _build_pipeline(self) -> compose.Pipeline:
        parts: list[Any] = []
        if self._numeric:
            parts.append(
                compose.Select(*self._numeric)
                | preprocessing.StatImputer(*[(n, stats.Mean()) for n in self._numeric])  # type: ignore[no-untyped-call]
            )
        if self._categorical:
            parts.append(
                compose.Select(*self._categorical)
                | preprocessing.StatImputer(  # type: ignore[no-untyped-call]
                    *[(n, MISSING_CATEGORY) for n in self._categorical]
                )
                | preprocessing.OneHotEncoder()
            )
        pre = parts[0] if len(parts) == 1 else compose.TransformerUnion(*parts)
        arf = forest.ARFClassifier(
            n_models=self.n_models,
            max_features=self.max_features,
            lambda_value=self.lambda_value,
            grace_period=self.grace_period,
            seed=self.seed,
        )
        return compose.Pipeline(pre, arf)

    # --- pickling: the lock is per process ------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return (
            f"ARFModel(features={len(self.schema.features)}, classes={self._classes!r}, "
            f"n_models={self.n_models}, max_features={self.max_features!r}, "
            f"lambda_value={self.lambda_value}, grace_period={self.grace_period}, "
            f"seed={self.seed}, n_learned={self.n_learned})"
        )

    # --- the Model protocol ---------------------------------------------------------------------

    @property
    def classes(self) -> tuple[Any, ...]:
        return self._classes

    @property
    def forest(self) -> forest.ARFClassifier:
        """The river forest (the pipeline's last step)."""
        arf: forest.ARFClassifier = self.pipeline[-1]
        return arf

    @property
    def n_trees(self) -> int:
        """Trees in the forest (0 until the first row is learned)."""
        return len(self.forest)

    def prepare(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The pipeline's input for one record: every feature present, ``None`` when missing,
        numbers and booleans as floats, categories as strings."""
        out: dict[str, Any] = {}
        for name in self._numeric:
            value = _plain(record.get(name))
            out[name] = None if _is_missing(value) else float(value)
        for name in self._categorical:
            value = _plain(record.get(name))
            out[name] = None if _is_missing(value) else str(value)
        return out

    def _proba_row(self, x: dict[str, Any]) -> np.ndarray:
        scores: dict[Any, float] = self.pipeline.predict_proba_one(x)
        row = np.zeros(len(self._classes), dtype=np.float64)
        for label, p in scores.items():
            j = self._column.get(label_text(label))
            if j is not None:
                row[j] = float(p)
        total = float(row.sum())
        if not total > 0:  # nothing learned yet
            return np.full(len(self._classes), 1.0 / len(self._classes))
        return row / total

    def predict_proba_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probabilities for validated records, shape ``(len(records), len(classes))``."""
        prepared = [self.prepare(r) for r in records]
        out = np.empty((len(prepared), len(self._classes)), dtype=np.float64)
        with self._lock:
            for i, x in enumerate(prepared):
                out[i] = self._proba_row(x)
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities for a :meth:`FeatureSchema.to_frame` frame."""
        return self.predict_proba_records(_records(frame))

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        """The most probable class of each row."""
        proba = self.predict_proba(frame)
        return [self._classes[j] for j in proba.argmax(axis=1)]

    # --- learning -------------------------------------------------------------------------------

    def class_of(self, label: Any) -> Any:
        """The class a label stands for (``1``, ``1.0`` and ``"1"`` are the same class)."""
        j = self._column.get(label_text(_plain(label)))
        if j is None:
            raise DataError(f"label {label!r} is not one of the model's classes {self._classes}")
        return self._classes[j]

    def learn_one(self, x: Mapping[str, Any], y: Any) -> None:
        """Learn one labelled record (a label outside :attr:`classes` raises DataError)."""
        target = self.class_of(y)
        prepared = self.prepare(x)
        with self._lock:
            self.pipeline.learn_one(prepared, target)
            self.n_learned += 1

    def learn_many(
        self,
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        labels: Iterable[Any],
        *,
        progress: RowsProgress | None = None,
    ) -> int:
        """Learn rows in order with :meth:`learn_one`; returns how many were learned.

        ``progress(done, total)`` is called every 100 rows and at the end. The lock is taken
        per row, so predictions interleave with a long training run.
        """
        records = _records(rows) if isinstance(rows, pd.DataFrame) else list(rows)
        targets = list(labels.tolist() if isinstance(labels, pd.Series | np.ndarray) else labels)
        if len(targets) != len(records):
            raise DataError(f"got {len(targets)} labels for {len(records)} rows")
        total = len(records)
        for i, (record, label) in enumerate(zip(records, targets, strict=True), start=1):
            self.learn_one(record, label)
            if progress is not None and (i % 100 == 0 or i == total):
                progress(i, total)
        return total

    # --- copies and tree renewal ----------------------------------------------------------------

    def snapshot(self) -> ARFModel:
        """An independent copy, taken under the lock (a consistent state while learning goes on).

        The lock is held only to serialize the model; rebuilding the copy happens outside it.
        """
        with self._lock:
            payload = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        copied: ARFModel = pickle.loads(payload)
        return copied

    def tree_weights(self) -> tuple[float, ...]:
        """The weight of rows each tree has learned (fresh trees start at 0)."""
        return tuple(float(t._train_weight_seen_by_model) for t in self.forest)

    def renew_trees(self, share: float, *, seed: int) -> tuple[int, ...]:
        """Replace ``round(share * n_trees)`` trees by fresh ones; returns their indices.

        The trees replaced are the ones the forest trusts least: lowest voting weight (the
        forest's running accuracy of each tree), ties broken by position. Each new tree comes
        with fresh drift and warning detectors and a fresh accuracy, exactly as when the forest
        itself replaces a drifted tree. The forest's random generator is reseeded with ``seed``
        so that the new trees and the rows that follow are reproducible.
        """
        if not 0.0 <= share <= 1.0:
            raise ConfigurationError(f"share must be in [0, 1], got {share}")
        arf = self.forest
        with self._lock:
            arf._rng.seed(seed)
            n = len(arf)
            k = round(share * n)
            if k == 0:
                return ()
            weights = [float(m.get()) for m in arf._metrics]
            chosen = sorted(sorted(range(n), key=lambda i: (weights[i], i))[:k])
            for i in chosen:
                arf.data[i] = arf._new_base_model()  # type: ignore[no-untyped-call]
                arf._metrics[i] = arf.metric.clone()
                if not arf._drift_detection_disabled:
                    arf._drift_detectors[i] = arf.drift_detector.clone()
                if not arf._warning_detection_disabled:
                    arf._warning_detectors[i] = arf.warning_detector.clone()
                    arf._background[i] = None
            return tuple(chosen)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as records, NaN as ``None``."""
    return [
        {str(k): (None if _is_missing(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def continue_training(
    champion: ARFModel,
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    labels: Iterable[Any],
    *,
    new_tree_share: float = 0.4,
    seed: int = 0,
    progress: RowsProgress | None = None,
) -> ARFModel:
    """A challenger continued from an online champion: renew a share of trees, learn new rows.

    The champion is not touched: its state is copied (under its lock, so it may keep serving
    and learning meanwhile). In the copy, ``round(new_tree_share * n_trees)`` trees, those with
    the lowest voting weight, are replaced by fresh ARF members (see
    :meth:`ARFModel.renew_trees`), then every row is learned in order by all trees, old and
    new. The old trees keep what they knew and adapt; the new ones know only the new rows, so
    the forest can follow a changed concept without forgetting the old one at once. The seed
    system replaced 40% of the trees.

    The challenger has the champion's schema, classes, configuration and preprocessing state
    (imputation statistics, known categories). Its :attr:`ARFModel.renewed_trees` lists the
    replaced indices.

    Parameters
    ----------
    champion
        The serving online model (``bundle.model`` of an ``arf`` version).
    rows
        The new training rows: a frame with the schema's feature columns, or records.
    labels
        Their labels, in the same order (classes of the champion).
    new_tree_share
        Share of the trees replaced by fresh ones, in [0, 1].
    seed
        Seed of the new trees and of the online bagging of the new rows.
    progress
        ``progress(done, total)`` while learning the rows.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> frame = pd.DataFrame({"x": rng.normal(size=400)})
    >>> frame["y"] = (frame["x"] > 0).astype(int)
    >>> from driftline.schema import infer_schema
    >>> champion = ARFModel(infer_schema(frame, "y"), n_models=5, seed=0)
    >>> champion.learn_many(frame[["x"]], frame["y"])
    400
    >>> flipped = 1 - frame["y"]
    >>> challenger = continue_training(champion, frame[["x"]], flipped, seed=1)
    >>> challenger.renewed_trees, challenger.n_learned, champion.n_learned
    ((0, 2), 800, 400)
    >>> probe = pd.DataFrame({"x": [2.0, -2.0]})
    >>> champion.predict(probe), challenger.predict(probe)
    ([1, 0], [0, 1])
    """
    if not isinstance(champion, ARFModel):
        raise ConfigurationError(
            f"continue_training needs an online (arf) champion, got {type(champion).__name__}"
        )
    if not 0.0 <= new_tree_share <= 1.0:
        raise ConfigurationError(f"new_tree_share must be in [0, 1], got {new_tree_share}")
    model = champion.snapshot()
    if model.n_trees == 0:  # a champion that never learned: nothing to renew
        model.forest._rng.seed(seed)
        model.renewed_trees = ()
    else:
        model.renewed_trees = model.renew_trees(new_tree_share, seed=seed)
    model.learn_many(rows, labels, progress=progress)
    return model
