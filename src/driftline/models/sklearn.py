"""scikit-learn pipelines: preprocessing (imputation, scaling, one-hot encoding) and a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from driftline.errors import ConfigurationError
from driftline.schema import FeatureSchema

__all__ = ["CompiledPreprocessor", "SklearnKind", "SklearnModel", "build_pipeline"]

SklearnKind = Literal["hgb", "rf", "logreg"]
SKLEARN_KINDS: tuple[str, ...] = get_args(SklearnKind)


def _estimator(kind: str, seed: int) -> Any:
    if kind == "hgb":
        return HistGradientBoostingClassifier(random_state=seed, max_iter=200)
    if kind == "rf":
        return RandomForestClassifier(n_estimators=100, random_state=seed, min_samples_leaf=2)
    if kind == "logreg":
        return LogisticRegression(max_iter=1_000)
    raise ConfigurationError(f"model kind must be one of {SKLEARN_KINDS}, got {kind!r}")


def build_pipeline(schema: FeatureSchema, kind: str = "hgb", *, seed: int = 0) -> Pipeline:
    """An unfitted pipeline that takes :meth:`FeatureSchema.to_frame` frames.

    Numeric and boolean features: median imputation, standard scaling. Categorical features:
    a constant for missing values, one-hot encoding that ignores categories unseen in training.
    """
    numeric = [f.name for f in schema.features if f.kind != "categorical"]
    categorical = [f.name for f in schema.features if f.kind == "categorical"]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(
            (
                "num",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(strategy="constant", fill_value="__missing__"),
                        ),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="ignore", sparse_output=False, max_categories=50
                            ),
                        ),
                    ]
                ),
                categorical,
            )
        )
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("pre", pre), ("model", _estimator(kind, seed))])


class CompiledPreprocessor:
    """The fitted preprocessing of :func:`build_pipeline`, replayed in plain NumPy.

    scikit-learn's ColumnTransformer spends milliseconds per call on validation and pandas
    indexing, which dwarfs a linear model's 0.1 ms. This replays the *fitted* steps directly:
    numeric columns are imputed and scaled with the fitted statistics; each categorical value
    is looked up in a table of encoder outputs that was computed by calling the fitted encoder
    itself on every known category, on the missing marker and on an unseen value, so one-hot
    encoding (infrequent-category grouping included) is the encoder's own answer. A test checks
    equality with the pipeline on random rows with missing and unseen values.
    """

    _UNSEEN = "\x00driftline-unseen\x00"

    def __init__(self, pre: ColumnTransformer) -> None:
        self.numeric: list[str] = []
        self.fill = np.zeros(0)
        self.mean = np.zeros(0)
        self.scale = np.ones(0)
        self.categorical: list[tuple[str, dict[str, np.ndarray], np.ndarray]] = []
        for name, transformer, columns in pre.transformers_:
            if name == "num":
                impute, scale = transformer.named_steps["impute"], transformer.named_steps["scale"]
                self.numeric = list(columns)
                self.fill = np.asarray(impute.statistics_, dtype=np.float64)
                self.mean = np.asarray(scale.mean_, dtype=np.float64)
                self.scale = np.asarray(scale.scale_, dtype=np.float64)
            elif name == "cat":
                encoder = transformer.named_steps["onehot"]
                fill_value = transformer.named_steps["impute"].fill_value
                for i, column in enumerate(columns):
                    known = [str(c) for c in encoder.categories_[i]]
                    values = [*known, fill_value, self._UNSEEN]
                    blocks = self._encode_one(transformer, list(columns), i, values)
                    table = dict(zip(values, blocks, strict=True))
                    self.categorical.append((column, table, table[self._UNSEEN]))
            elif name != "remainder":
                raise TypeError(f"cannot compile transformer {name!r}")
        self.width = len(self.numeric) + sum(len(t[2]) for t in self.categorical)

    @staticmethod
    def _encode_one(
        transformer: Pipeline, columns: list[str], index: int, values: list[str]
    ) -> np.ndarray:
        """Encoder output block of column ``index`` for each value (other columns fixed)."""
        encoder = transformer.named_steps["onehot"]
        frame = pd.DataFrame(
            {
                c: values if j == index else [str(encoder.categories_[j][0])] * len(values)
                for j, c in enumerate(columns)
            },
            dtype=object,
        )
        out = np.asarray(transformer.transform(frame), dtype=np.float64)
        widths = _encoder_widths(encoder)
        start = int(sum(widths[:index]))
        return out[:, start : start + widths[index]]

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        n = len(records)
        out = np.empty((n, self.width), dtype=np.float64)
        k = len(self.numeric)
        if k:
            raw = np.array(
                [[_number(r.get(c)) for c in self.numeric] for r in records], dtype=np.float64
            ).reshape(n, k)
            raw = np.where(np.isnan(raw), self.fill, raw)
            out[:, :k] = (raw - self.mean) / self.scale
        position = k
        for column, table, unseen in self.categorical:
            width = len(unseen)
            for row, record in enumerate(records):
                value = record.get(column)
                key = "__missing__" if value is None else str(value)
                out[row, position : position + width] = table.get(key, unseen)
            position += width
        return out


def _number(value: Any) -> float:
    return np.nan if value is None else float(value)


def _encoder_widths(encoder: OneHotEncoder) -> list[int]:
    """Output columns per input column of a fitted OneHotEncoder (infrequent groups included)."""
    inputs = [f"in{i}|" for i in range(len(encoder.categories_))]
    names = [str(n) for n in encoder.get_feature_names_out(inputs)]
    return [sum(1 for n in names if n.startswith(f"{prefix}_")) for prefix in inputs]


class ForestPredictor:
    """A fitted single-output random forest's ``predict_proba`` without scikit-learn's
    per-call overhead, with the same result bit for bit.

    ``RandomForestClassifier.predict_proba`` dispatches its trees through joblib and each
    tree validates the input again: on the serving path's small batches that costs 5-7x the
    trees' own work (100 trees, 1-8 rows: ~9-13 ms against ~1.8 ms; README "Serving
    benchmark"), and it was what kept two workers from scaling on two cores. Here the input
    is converted once (``float32``, C order, as the forest does) and the trees' own
    ``predict_proba`` results are summed in the same order, then divided by the number of
    trees, as scikit-learn does with ``n_jobs=1``. The first call also runs scikit-learn's
    method and keeps the fast path only if both agree exactly.
    """

    def __init__(self, forest: Any) -> None:
        self.forest = forest
        self.verified = False

    @staticmethod
    def applies(estimator: Any) -> bool:
        return (
            isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier)
            and estimator.n_jobs in (None, 1)
            and getattr(estimator, "n_outputs_", 0) == 1
            and bool(getattr(estimator, "estimators_", None))
        )

    def _sum(self, features: np.ndarray) -> np.ndarray:
        forest = self.forest
        x = np.ascontiguousarray(features, dtype=np.float32)
        out = np.zeros((x.shape[0], int(forest.n_classes_)), dtype=np.float64)
        for tree in forest.estimators_:
            out += tree.predict_proba(x, check_input=False)
        out /= len(forest.estimators_)
        return out

    def predict_proba(self, features: np.ndarray) -> np.ndarray | None:
        """The probabilities, or ``None`` when the fast path disagreed (then never again)."""
        if not isinstance(features, np.ndarray):
            return None
        fast = self._sum(features)
        if not self.verified:
            if not np.array_equal(fast, self.forest.predict_proba(features)):
                return None
            self.verified = True
        return fast


class SklearnModel:
    """A fitted scikit-learn pipeline behind the :class:`~driftline.models.base.Model` protocol.

    Pipelines built by :func:`build_pipeline` also get a compiled preprocessing fast path
    (:class:`CompiledPreprocessor`); others run through ``pipeline.predict_proba``.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._classes = tuple(
            v.item() if isinstance(v, np.generic) else v for v in pipeline.classes_
        )
        self._compiled: CompiledPreprocessor | None = None
        self._forest: ForestPredictor | None = None
        self._compile()

    def _compile(self) -> None:
        try:
            self._compiled = CompiledPreprocessor(self.pipeline.named_steps["pre"])
        except (KeyError, TypeError, AttributeError, ValueError):
            self._compiled = None
        model = self.pipeline.named_steps.get("model")
        self._forest = ForestPredictor(model) if ForestPredictor.applies(model) else None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_forest", None)  # rebuilt (and verified again) on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_compiled" not in state:
            self._compile()
        else:
            model = self.pipeline.named_steps.get("model")
            self._forest = ForestPredictor(model) if ForestPredictor.applies(model) else None

    @property
    def classes(self) -> tuple[Any, ...]:
        return self._classes

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def use_compiled(self, enabled: bool) -> None:
        """Switch the compiled preprocessing path on (when the pipeline allows) or off."""
        if enabled:
            self._compile()
        else:
            self._compiled = None

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(frame))

    def predict_proba_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probabilities for validated records, through the compiled path when there is one."""
        if self._compiled is None:
            columns = list(self.pipeline.feature_names_in_)
            frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=columns)
            return self.predict_proba(frame)
        features = self._compiled.transform_records(records)
        if self._forest is not None:
            proba = self._forest.predict_proba(features)
            if proba is not None:
                return proba
            self._forest = None  # disagreed with scikit-learn once: never used again
        return np.asarray(self.pipeline.named_steps["model"].predict_proba(features))
