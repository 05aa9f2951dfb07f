"""Feature schema: what a model expects, inferred from its training data, and request validation.

A schema is saved with every model version. Requests are checked against it before the model
sees them; every bad field is reported at once, in FastAPI's error shape, so a client can fix
all of them in one go. Text no store can hold is an error too: a category with a control
character or a lone surrogate, or longer than :data:`~driftline.limits.MAX_TEXT_LENGTH`; so is
an integer beyond a double's range. Values that are *valid but unusual* (out of the training
range, an unseen category) are accepted: they are data-quality signals for the monitor, not
request errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftline.errors import DataError, ValidationError
from driftline.limits import MAX_TEXT_LENGTH, NAME_ECHO_LENGTH, echo, text_problem

__all__ = [
    "FeatureKind",
    "FeatureSchema",
    "FeatureSpec",
    "TaskKind",
    "infer_schema",
    "label_text",
]

FeatureKind = Literal["numeric", "categorical", "boolean"]
TaskKind = Literal["binary", "multiclass", "anomaly"]
Loc = tuple[str | int, ...]

#: Most categories kept per categorical feature in the schema (the rest are still accepted).
MAX_CATEGORIES = 1_000


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature as seen in the training data."""

    name: str
    kind: FeatureKind
    nullable: bool = False
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()

    def check(self, value: Any, loc: Loc) -> tuple[Any, dict[str, Any] | None]:
        """Return ``(clean value, None)`` or ``(None, error)`` for one value of this feature."""
        if value is None:
            if self.nullable:
                return None, None
            return None, _error(
                loc,
                f"feature '{self.name}' was never missing in training; null not allowed",
                "null_not_allowed",
            )
        if self.kind == "numeric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None, _error(
                    loc, f"expected a number, got {type(value).__name__}", "type_error.number"
                )
            if isinstance(value, float) and not math.isfinite(value):
                return None, _error(loc, f"expected a finite number, got {value}", "not_finite")
            try:
                return float(value), None
            except OverflowError:  # an integer beyond a double's range (±1.8e308)
                return None, _error(
                    loc,
                    f"expected a number within ±1.8e308, got an integer of "
                    f"{len(str(abs(value)))} digits",
                    "not_finite",
                )
        if self.kind == "boolean":
            if not isinstance(value, bool):
                return None, _error(
                    loc, f"expected true or false, got {type(value).__name__}", "type_error.bool"
                )
            return value, None
        if not isinstance(value, str):
            return None, _error(
                loc, f"expected a string category, got {type(value).__name__}", "type_error.str"
            )
        problem = text_problem(value, max_length=MAX_TEXT_LENGTH)
        if problem is not None:  # no store could hold it (or it is absurdly long)
            return None, _error(loc, f"category {problem}", "value_error.text")
        return value, None


def _error(loc: Loc, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


@dataclass(frozen=True)
class FeatureSchema:
    """The features a model takes, its target and its classes.

    Example
    -------
    >>> frame = pd.DataFrame({"age": [30, 41, 25], "city": ["a", "b", "a"], "y": [0, 1, 0]})
    >>> schema = infer_schema(frame, target="y")
    >>> schema.names
    ('age', 'city')
    >>> schema.validate_record({"age": 33, "city": "c"}, loc=("features",))
    {'age': 33.0, 'city': 'c'}
    >>> schema.validate_record([33, "a"], loc=("features",))
    {'age': 33.0, 'city': 'a'}
    >>> try:
    ...     schema.validate_record({"age": "old", "zip": 1}, loc=("features",))
    ... except ValidationError as exc:
    ...     [".".join(map(str, e["loc"])) for e in exc.errors]
    ['features.zip', 'features.age', 'features.city']
    """

    features: tuple[FeatureSpec, ...]
    target: str | None = None
    classes: tuple[Any, ...] = ()
    task: TaskKind = "binary"
    _index: dict[str, FeatureSpec] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {f.name: f for f in self.features})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def __getitem__(self, name: str) -> FeatureSpec:
        return self._index[name]

    # --- validation -------------------------------------------------------------------------

    def check_record(
        self, features: Any, loc: Loc
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Validate one record; return ``(clean record, [])`` or ``(None, errors)``.

        ``features`` is an object keyed by feature name or a list in schema order.
        """
        errors: list[dict[str, Any]] = []
        if isinstance(features, dict | Mapping):
            raw: Mapping[str, Any] = features
            for key in features:
                if key not in self._index:
                    # the client's text, cut short and encodable
                    name = echo(str(key), NAME_ECHO_LENGTH)
                    errors.append(
                        _error((*loc, name), f"unknown feature {name!r}", "unknown_feature")
                    )
        elif isinstance(features, Sequence) and not isinstance(features, str | bytes):
            if len(features) != len(self.features):
                return None, [
                    _error(
                        loc,
                        f"expected {len(self.features)} values in schema order "
                        f"{list(self.names)}, got {len(features)}",
                        "wrong_length",
                    )
                ]
            raw = dict(zip(self.names, features, strict=True))
        else:
            return None, [
                _error(
                    loc,
                    "features must be an object keyed by feature name or a list in schema order",
                    "type_error.features",
                )
            ]
        clean: dict[str, Any] = {}
        for spec in self.features:
            if spec.name not in raw:
                if spec.nullable:
                    clean[spec.name] = None
                    continue
                errors.append(
                    _error(
                        (*loc, spec.name),
                        f"missing required feature '{spec.name}'",
                        "missing",
                    )
                )
                continue
            value = raw[spec.name]
            if type(value) is float and spec.kind == "numeric" and math.isfinite(value):
                clean[spec.name] = value  # the common case, as spec.check would answer it
                continue
            value, error = spec.check(value, (*loc, spec.name))
            if error is not None:
                errors.append(error)
            else:
                clean[spec.name] = value
        if errors:
            return None, errors
        return clean, []

    def validate_record(self, features: Any, loc: Loc = ("features",)) -> dict[str, Any]:
        """Validate one record or raise :class:`ValidationError` naming every bad field."""
        clean, errors = self.check_record(features, loc)
        if errors or clean is None:
            raise ValidationError(errors)
        return clean

    # --- frames -----------------------------------------------------------------------------

    def to_frame(self, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Build the model's input frame (schema column order, stable dtypes) from records."""
        columns: dict[str, Any] = {}
        for spec in self.features:
            values = [r.get(spec.name) for r in records]
            if spec.kind == "categorical":
                columns[spec.name] = np.array(
                    [np.nan if v is None else v for v in values], dtype=object
                )
            else:
                columns[spec.name] = np.array(
                    [np.nan if v is None else float(v) for v in values], dtype=np.float64
                )
        return pd.DataFrame(columns, columns=list(self.names))

    def coerce_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Check that a dataset has every feature and give it the model's dtypes."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise DataError(f"data lacks feature column(s) {missing}; model expects {self.names}")
        out: dict[str, Any] = {}
        for spec in self.features:
            column = frame[spec.name]
            if spec.kind == "categorical":
                out[spec.name] = np.array(
                    [np.nan if _is_missing(v) else str(v) for v in column], dtype=object
                )
            else:
                try:
                    out[spec.name] = pd.to_numeric(column, errors="raise").astype(np.float64)
                except (TypeError, ValueError) as exc:
                    raise DataError(f"column '{spec.name}' must be numeric: {exc}") from exc
        return pd.DataFrame(out, columns=list(self.names), index=frame.index)

    # --- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [asdict(f) for f in self.features],
            "target": self.target,
            "classes": list(self.classes),
            "task": self.task,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        features = tuple(
            FeatureSpec(**{**f, "categories": tuple(f.get("categories", ()))})
            for f in data["features"]
        )
        return cls(
            features=features,
            target=data.get("target"),
            classes=tuple(data.get("classes", ())),
            task=data.get("task", "binary"),
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureSchema:
        return cls.from_dict(json.loads(text))

    def compatible_with(self, other: FeatureSchema) -> list[str]:
        """Reasons ``other`` cannot take this schema's requests (empty when compatible)."""
        reasons: list[str] = []
        if self.names != other.names:
            reasons.append(f"feature names differ: {self.names} vs {other.names}")
        else:
            for a, b in zip(self.features, other.features, strict=True):
                if a.kind != b.kind:
                    reasons.append(f"feature '{a.name}' is {a.kind} vs {b.kind}")
        if set(map(str, self.classes)) != set(map(str, other.classes)):
            reasons.append(f"classes differ: {list(self.classes)} vs {list(other.classes)}")
        return reasons


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _json_scalar(value: Any) -> Any:
    """A numpy/pandas scalar as a plain JSON value."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def infer_schema(
    frame: pd.DataFrame, target: str | None, *, allow_missing: bool = False
) -> FeatureSchema:
    """Infer the feature schema of a training table.

    Numeric columns (not bool) become ``numeric``; bool columns ``boolean``; everything else
    ``categorical``. A feature is nullable when training data had missing values in it, or when
    ``allow_missing`` is set.
    """
    if target is not None and target not in frame.columns:
        raise DataError(f"target column '{target}' not in data; columns are {list(frame.columns)}")
    feature_columns = [c for c in frame.columns if c != target]
    if not feature_columns:
        raise DataError("data has no feature columns besides the target")
    specs: list[FeatureSpec] = []
    for name in feature_columns:
        column = frame[name]
        nullable = bool(column.isna().any()) or allow_missing
        present = column.dropna()
        if pd.api.types.is_bool_dtype(column.dtype):
            specs.append(FeatureSpec(name=str(name), kind="boolean", nullable=nullable))
        elif pd.api.types.is_numeric_dtype(column.dtype):
            values = present.to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            specs.append(
                FeatureSpec(
                    name=str(name),
                    kind="numeric",
                    nullable=nullable,
                    integer=bool(len(finite) and np.all(np.mod(finite, 1) == 0)),
                    minimum=float(finite.min()) if len(finite) else None,
                    maximum=float(finite.max()) if len(finite) else None,
                )
            )
        else:
            counts = present.astype(str).value_counts()
            specs.append(
                FeatureSpec(
                    name=str(name),
                    kind="categorical",
                    nullable=nullable,
                    categories=tuple(sorted(map(str, counts.index[:MAX_CATEGORIES]))),
                )
            )
    classes: tuple[Any, ...] = ()
    task: TaskKind = "anomaly"
    if target is not None:
        labels = frame[target].dropna()
        if labels.empty:
            raise DataError(f"target column '{target}' has no values")
        try:
            # The order scikit-learn gives ``classes_``: probabilities line up with it.
            unique = np.unique(labels.to_numpy())
        except TypeError as exc:
            raise DataError(f"target column '{target}' mixes label types: {exc}") from exc
        classes = tuple(_json_scalar(v) for v in unique)
        if len(classes) < 2:
            raise DataError(
                f"target column '{target}' has a single class {classes!r}; need at least two"
            )
        task = "binary" if len(classes) == 2 else "multiclass"
    return FeatureSchema(features=tuple(specs), target=target, classes=classes, task=task)


def label_text(value: Any) -> str:
    """The canonical text of a class label, as stored beside predictions.

    Integral floats lose their ``.0`` so that labels read from a CSV with missing values
    (floats) still match predicted integer classes.

    >>> label_text(1), label_text(1.0), label_text(np.int64(2)), label_text("yes"), label_text(True)
    ('1', '1', '2', 'yes', 'True')
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
