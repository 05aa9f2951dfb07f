"""The one protocol every model kind implements, and what a prediction call returns.

Serving, shadowing, the gate and the monitor only ever see a :class:`Model`: scikit-learn
pipelines, river's Adaptive Random Forest and the anomaly detectors all plug in behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["Model", "OnlineModel", "Predictions"]


@runtime_checkable
class Model(Protocol):
    """A fitted classifier: class labels and a probability per class for each row."""

    @property
    def classes(self) -> tuple[Any, ...]:
        """Class labels, in the column order of :meth:`predict_proba`."""
        ...

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities, shape ``(len(frame), len(classes))``; rows sum to one."""
        ...


@runtime_checkable
class OnlineModel(Model, Protocol):
    """A model that keeps learning from labelled rows as they arrive."""

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        """Learn from one labelled row."""
        ...


@dataclass(frozen=True)
class Predictions:
    """One model call's answers, aligned with its input rows."""

    classes: tuple[Any, ...]
    proba: np.ndarray

    @classmethod
    def from_proba(cls, classes: tuple[Any, ...], proba: np.ndarray) -> Predictions:
        return cls(classes=classes, proba=np.asarray(proba, dtype=np.float64))

    def __len__(self) -> int:
        return int(self.proba.shape[0])

    @property
    def label_index(self) -> np.ndarray:
        return np.asarray(np.argmax(self.proba, axis=1))

    @property
    def labels(self) -> list[Any]:
        return [self.classes[i] for i in self.label_index]

    @property
    def confidence(self) -> np.ndarray:
        return np.asarray(self.proba.max(axis=1))

    def row(self, i: int) -> tuple[Any, dict[str, float], float]:
        """``(label, {class: probability}, confidence)`` of row ``i``, JSON-ready."""
        probs = self.proba[i]
        j = int(np.argmax(probs))
        return (
            self.classes[j],
            {str(c): float(p) for c, p in zip(self.classes, probs, strict=True)},
            float(probs[j]),
        )
