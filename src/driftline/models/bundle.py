"""A model version on disk: the fitted model plus everything needed to serve and monitor it.

Layout of a bundle folder (logged to MLflow as the version's artifacts)::

    model.pkl           the fitted model (any :class:`~driftline.models.base.Model`), pickled;
                        older bundles hold ``model.joblib`` (joblib) instead, still read
    schema.json         the feature schema requests are validated against
    reference.parquet   a bounded, stratified sample of the training data (features + target)
    evaluation.parquet  the holdout rows with their labels and the model's probabilities
    metrics.json        holdout metrics
    meta.json           kind, seed, row counts, data hash, driftline version, extras
    monitoring.json     reference profiles (features, outputs) and the CBPE calibrator
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from driftline.errors import DataError
from driftline.models.base import Model, Predictions
from driftline.schema import FeatureSchema

__all__ = ["PROBA_PREFIX", "ModelBundle"]

MODEL_FILE = "model.pkl"
#: What bundles held before: joblib's format, which joblib reads and writes with Python's
#: pure-Python pickler. On an Adaptive Random Forest (thousands of small objects) that took
#: ~10x longer than the C pickler both ways (24 s against 2.6 s to write one on a busy machine).
LEGACY_MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
REFERENCE_FILE = "reference.parquet"
EVALUATION_FILE = "evaluation.parquet"
METRICS_FILE = "metrics.json"
META_FILE = "meta.json"
MONITORING_FILE = "monitoring.json"
#: Column prefix of the model's probabilities in a bundle's evaluation frame.
PROBA_PREFIX = "__proba__"


@dataclass
class ModelBundle:
    """A fitted model with its schema, reference sample, holdout evaluation and metrics."""

    model: Model
    schema: FeatureSchema
    kind: str
    metrics: dict[str, Any] = field(default_factory=dict)
    reference: pd.DataFrame | None = None
    evaluation: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    version: int | None = None
    #: JSON of :class:`driftline.monitoring.MonitoringReference` (kept raw here so that this
    #: module does not depend on the monitoring package).
    monitoring: dict[str, Any] | None = None

    @property
    def classes(self) -> tuple[Any, ...]:
        return self.model.classes

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> Predictions:
        """Predict validated records (see :meth:`FeatureSchema.check_record`).

        Models with a ``predict_proba_records`` fast path (compiled scikit-learn pipelines)
        skip building a DataFrame.
        """
        fast = getattr(self.model, "predict_proba_records", None)
        if fast is not None:
            return Predictions.from_proba(self.model.classes, fast(records))
        frame = self.schema.to_frame(records)
        return Predictions.from_proba(self.model.classes, self.model.predict_proba(frame))

    def predict_frame(self, frame: pd.DataFrame) -> Predictions:
        """Predict a dataset (columns are coerced to the schema's dtypes)."""
        clean = self.schema.coerce_frame(frame)
        return Predictions.from_proba(self.model.classes, self.model.predict_proba(clean))

    # --- persistence ------------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / MODEL_FILE).open("wb") as out:
            pickle.dump(self.model, out, protocol=pickle.HIGHEST_PROTOCOL)
        (folder / SCHEMA_FILE).write_text(self.schema.to_json())
        (folder / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2, default=str))
        (folder / META_FILE).write_text(
            json.dumps({**self.meta, "kind": self.kind}, indent=2, default=str)
        )
        if self.reference is not None:
            self.reference.to_parquet(folder / REFERENCE_FILE, index=False)
        if self.evaluation is not None:
            self.evaluation.to_parquet(folder / EVALUATION_FILE, index=False)
        if self.monitoring is not None:
            (folder / MONITORING_FILE).write_text(json.dumps(self.monitoring))
        return folder

    @classmethod
    def load(cls, folder: Path, *, version: int | None = None) -> ModelBundle:
        model = _load_model(folder)
        meta = json.loads((folder / META_FILE).read_text())
        reference = (
            pd.read_parquet(folder / REFERENCE_FILE) if (folder / REFERENCE_FILE).exists() else None
        )
        evaluation = (
            pd.read_parquet(folder / EVALUATION_FILE)
            if (folder / EVALUATION_FILE).exists()
            else None
        )
        return cls(
            model=model,
            schema=FeatureSchema.from_json((folder / SCHEMA_FILE).read_text()),
            kind=str(meta.get("kind", "unknown")),
            metrics=json.loads((folder / METRICS_FILE).read_text()),
            reference=reference,
            evaluation=evaluation,
            meta=meta,
            version=version,
            monitoring=(
                json.loads((folder / MONITORING_FILE).read_text())
                if (folder / MONITORING_FILE).exists()
                else None
            ),
        )


def _load_model(folder: Path) -> Model:
    """The bundle's fitted model: ``model.pkl``, or ``model.joblib`` in an older bundle."""
    if (folder / MODEL_FILE).exists():
        with (folder / MODEL_FILE).open("rb") as source:
            model: Model = pickle.load(source)
        return model
    if (folder / LEGACY_MODEL_FILE).exists():
        legacy: Model = joblib.load(folder / LEGACY_MODEL_FILE)
        return legacy
    raise DataError(f"{folder} is not a model bundle (no {MODEL_FILE} or {LEGACY_MODEL_FILE})")
