"""Bounded uniform samples of raw rows: the window side of the doubly robust accuracy estimate.

:class:`~driftline.performance.ImportanceWeightedAccuracy` needs rows, not bins: the labelled
reference rows (kept with the monitoring reference, :class:`LabelledSample`) and the window's
rows (features and the model's calibrated confidence, :class:`RowSample`, kept per time bucket
and worker). Both are bounded.

A :class:`RowSample` is a bottom-k sample: every offered row draws a uniform random key and the
sample keeps the ``capacity`` rows with the smallest keys. The bottom-``capacity`` rows of a
union of disjoint row sets are among the bottom-``capacity`` rows of each part, so merging
parts (time buckets, API workers) keeps the smallest keys of all of them and the result is the
bottom-``capacity`` sample of the union -- a uniform sample without replacement, exactly as if
one reservoir had seen every row. Parts of different capacities merge at the smallest one
(the only size every part can vouch for). Keys must be independent between workers: each
recorder draws them from its own OS-seeded generator.

Rows are encoded to floats by :func:`encode_columns` from the feature schema alone (numbers
as they are, booleans 0/1, a category its position among the schema's categories, -1 when
unseen; missing values NaN, which gradient boosting routes on its own), so the reference and
every worker encode alike without storing an encoder. Only rows whose key can enter the
sample are encoded: at high traffic a bucket encodes ``capacity × log(rows / capacity)`` rows,
not every row.

References
----------
Edith Cohen and Haim Kaplan. Summarizing data using bottom-k sketches. PODC 2007, 225-234.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.errors import DataError
from driftline.schema import FeatureSchema

__all__ = [
    "CONFIDENCE_COLUMN",
    "LabelledSample",
    "RowSample",
    "encode_columns",
    "merge_samples",
]

#: Name of the calibrated-confidence column of a window sample (the model's calibrated
#: probability of the class it predicted).
CONFIDENCE_COLUMN = "__confidence__"
#: Stored form of the sampled values: float32 (half of float64's bytes; a density ratio and an
#: outcome model do not need more than 7 significant digits). Keys stay float64.
VALUE_DTYPE = "<f4"
KEY_DTYPE = "<f8"
_LITTLE_ENDIAN = sys.byteorder == "little"


def _encode(values: np.ndarray, dtype: str) -> str:
    return np.ascontiguousarray(values, dtype=dtype).tobytes().hex()


def _decode(text: str, dtype: str, what: str) -> np.ndarray:
    try:
        raw = bytearray.fromhex(text)
    except ValueError as exc:
        raise DataError(f"sample field {what} is not hex-encoded {dtype}: {exc}") from None
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise DataError(f"sample field {what} holds {len(raw)} bytes, not {dtype} values")
    values = np.frombuffer(raw, dtype=dtype)
    return values if _LITTLE_ENDIAN else values.astype(dtype[1:])


def encode_columns(
    schema: FeatureSchema, columns: Mapping[str, Sequence[Any] | np.ndarray], rows: np.ndarray
) -> np.ndarray:
    """The feature values of ``rows`` (positions) as a float matrix, one column per feature.

    >>> import pandas as pd
    >>> from driftline.schema import infer_schema
    >>> schema = infer_schema(pd.DataFrame({"age": [30, 41], "city": ["a", "b"], "y": [0, 1]}),
    ...                       target="y")
    >>> columns = {"age": [30.0, None, 52.0], "city": ["b", "a", "zurich"]}
    >>> encode_columns(schema, columns, np.array([0, 1, 2])).tolist()
    [[30.0, 1.0], [nan, 0.0], [52.0, -1.0]]
    """
    out = np.empty((len(rows), len(schema.features)), dtype=np.float64)
    for j, spec in enumerate(schema.features):
        column = columns[spec.name]
        values = [column[i] for i in rows.tolist()]
        if spec.kind == "categorical":
            index = {c: float(k) for k, c in enumerate(spec.categories)}
            out[:, j] = [np.nan if _missing(v) else index.get(str(v), -1.0) for v in values]
        else:  # numeric and boolean (True is 1.0)
            out[:, j] = [np.nan if _missing(v) else float(v) for v in values]
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(eq=False)
class RowSample:
    """A bottom-k uniform sample of rows (see the module docstring); merges with others.

    ``values`` holds one row per kept row and one column per name of ``columns``; ``keys`` the
    rows' random keys, ascending; ``seen`` how many rows were offered (the size of the
    population the sample is uniform over).
    """

    columns: tuple[str, ...]
    capacity: int
    values: np.ndarray
    keys: np.ndarray
    seen: int = 0

    @classmethod
    def empty(cls, columns: Sequence[str], capacity: int) -> RowSample:
        if capacity < 1:
            raise DataError(f"a row sample needs a capacity of at least 1, got {capacity}")
        return cls(
            columns=tuple(columns),
            capacity=int(capacity),
            values=np.zeros((0, len(columns)), dtype=np.float32),
            keys=np.zeros(0, dtype=np.float64),
        )

    @property
    def n(self) -> int:
        return int(self.keys.size)

    def threshold(self) -> float:
        """Keys below this can still enter (1 until the sample is full)."""
        return float(self.keys[-1]) if self.n >= self.capacity else 1.0

    def draw(
        self,
        n_rows: int,
        rng: np.random.Generator,
        encode: Callable[[np.ndarray], np.ndarray],
    ) -> RowSample:
        """The sample of ``n_rows`` new rows that can change this one (merge it in with
        :func:`merge_samples`): keys for every row, values only for the rows whose key is
        below :meth:`threshold`, from ``encode(positions)`` (a float matrix, one row per
        position, columns as :attr:`columns`). Reads this sample, never changes it."""
        batch = RowSample.empty(self.columns, self.capacity)
        if n_rows <= 0:
            return batch
        keys = rng.random(n_rows)
        positions = np.flatnonzero(keys < self.threshold())
        batch.seen = int(n_rows)
        if positions.size == 0:
            return batch
        if positions.size > self.capacity:  # only the smallest keys of the batch can stay
            positions = positions[np.argpartition(keys[positions], self.capacity - 1)]
            positions = positions[: self.capacity]
        values = np.asarray(encode(positions), dtype=np.float32)
        if values.shape != (positions.size, len(self.columns)):
            raise DataError(
                f"encoded rows have shape {values.shape}; expected "
                f"({positions.size}, {len(self.columns)})"
            )
        batch.values, batch.keys = values, keys[positions]
        return batch

    def offer(
        self, n_rows: int, rng: np.random.Generator, encode: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        """Offer ``n_rows`` new rows (see :meth:`draw`) and keep the merged sample."""
        merged = merge_samples([self, self.draw(n_rows, rng, encode)])
        self.values, self.keys, self.seen = merged.values, merged.keys, merged.seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "capacity": self.capacity,
            "seen": self.seen,
            "values": _encode(self.values, VALUE_DTYPE),
            "keys": _encode(self.keys, KEY_DTYPE),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowSample:
        columns = tuple(str(c) for c in data["columns"])
        keys = _decode(str(data["keys"]), KEY_DTYPE, "keys")
        values = _decode(str(data["values"]), VALUE_DTYPE, "values")
        if values.size != keys.size * len(columns):
            raise DataError(
                f"sample holds {values.size} values for {keys.size} rows of {len(columns)} columns"
            )
        return cls(
            columns=columns,
            capacity=int(data["capacity"]),
            values=values.reshape(keys.size, len(columns)),
            keys=keys,
            seen=int(data.get("seen", keys.size)),
        )


def merge_samples(parts: Sequence[RowSample]) -> RowSample:
    """The bottom-k sample of the union of ``parts`` (disjoint row sets), at the smallest
    capacity among them; ``seen`` adds up."""
    if not parts:
        raise DataError("nothing to merge")
    columns = parts[0].columns
    for part in parts[1:]:
        if part.columns != columns:
            raise DataError(f"cannot merge samples of columns {columns!r} and {part.columns!r}")
    capacity = min(p.capacity for p in parts)
    keys = np.concatenate([p.keys for p in parts])
    values = np.concatenate([p.values for p in parts]) if len(parts) > 1 else parts[0].values
    if keys.size > capacity:
        keep = np.argpartition(keys, capacity - 1)[:capacity]
        keys, values = keys[keep], values[keep]
    order = np.argsort(keys, kind="stable")
    return RowSample(
        columns=columns,
        capacity=capacity,
        values=values[order],
        keys=keys[order],
        seen=sum(p.seen for p in parts),
    )


@dataclass(eq=False)
class LabelledSample:
    """Reference rows with their label outcome: features (encoded as :func:`encode_columns`),
    whether the model was right, and its calibrated confidence in the class it predicted.

    Kept with the monitoring reference (a uniform sample of the labelled holdout, bounded);
    the doubly robust estimate fits its outcome model on it and re-weights it to each window.
    """

    columns: tuple[str, ...]
    x: np.ndarray
    correct: np.ndarray
    confidence: np.ndarray
    #: Rows of the holdout the sample was drawn from.
    population: int

    @property
    def n(self) -> int:
        return int(self.correct.size)

    @property
    def fingerprint(self) -> str:
        """Short hash of the sample: the cache key of estimators fitted on it."""
        digest = hashlib.sha256()
        for part in (self.x, self.correct, self.confidence):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update("\x1f".join(self.columns).encode())
        return digest.hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "rows": self.n,
            "population": self.population,
            "x": _encode(self.x, VALUE_DTYPE),
            "correct": _encode(self.correct, "<f4"),
            "confidence": _encode(self.confidence, VALUE_DTYPE),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelledSample:
        columns = tuple(str(c) for c in data["columns"])
        rows = int(data["rows"])
        x = _decode(str(data["x"]), VALUE_DTYPE, "x")
        correct = _decode(str(data["correct"]), "<f4", "correct")
        confidence = _decode(str(data["confidence"]), VALUE_DTYPE, "confidence")
        if x.size != rows * len(columns) or correct.size != rows or confidence.size != rows:
            raise DataError("labelled sample dict has inconsistent sizes")
        return cls(
            columns=columns,
            x=x.reshape(rows, len(columns)),
            correct=correct,
            confidence=confidence,
            population=int(data.get("population", rows)),
        )
