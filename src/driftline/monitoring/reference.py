"""What normal looks like for one model version: reference profiles and the CBPE calibrator.

Built once at training time from the training rows (feature profile) and the holdout
(output profile, calibrator, reference accuracy), saved in the version's bundle, and loaded by
every worker and every monitor run — reference statistics are never recomputed per check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftline.errors import DataError
from driftline.models.bundle import PROBA_PREFIX, ModelBundle
from driftline.performance import Calibrator
from driftline.profiles import DatasetProfile, build_output_profile, build_reference_profile

__all__ = ["MonitoringReference", "attach_reference", "reference_for"]


@dataclass
class MonitoringReference:
    features: DatasetProfile
    outputs: DatasetProfile | None
    calibrator: Calibrator | None
    reference_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features.to_dict(),
            "outputs": self.outputs.to_dict() if self.outputs is not None else None,
            "calibrator": self.calibrator.to_dict() if self.calibrator is not None else None,
            "reference_accuracy": self.reference_accuracy,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringReference:
        return cls(
            features=DatasetProfile.from_dict(data["features"]),
            outputs=(DatasetProfile.from_dict(data["outputs"]) if data.get("outputs") else None),
            calibrator=(
                Calibrator.from_dict(data["calibrator"]) if data.get("calibrator") else None
            ),
            reference_accuracy=data.get("reference_accuracy"),
        )


def _holdout(bundle: ModelBundle) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels and probabilities of the holdout rows, when the bundle has them."""
    evaluation = bundle.evaluation
    target = bundle.schema.target or bundle.meta.get("target")
    if evaluation is None or target is None or target not in evaluation.columns:
        return None
    columns = [f"{PROBA_PREFIX}{c}" for c in bundle.classes]
    if not all(c in evaluation.columns for c in columns):
        return None
    labels = evaluation[target].to_numpy()
    return labels, evaluation[columns].to_numpy(dtype=np.float64)


def build_reference(
    bundle: ModelBundle, training_rows: pd.DataFrame | None = None, *, seed: int = 0
) -> MonitoringReference:
    """Profiles and calibrator of ``bundle``, from its training rows (or its reference sample)."""
    rows = training_rows if training_rows is not None else bundle.reference
    if rows is None:
        raise DataError("a reference profile needs training rows or the bundle's reference sample")
    features = build_reference_profile(bundle.schema.coerce_frame(rows), bundle.schema, seed=seed)
    outputs: DatasetProfile | None = None
    calibrator: Calibrator | None = None
    holdout = _holdout(bundle)
    if holdout is not None:
        labels, proba = holdout
        predicted = [bundle.classes[i] for i in proba.argmax(axis=1)]
        outputs = build_output_profile(predicted, proba, bundle.classes, seed=seed + 1)
        try:
            calibrator = Calibrator().fit(labels, proba, bundle.classes)
        except DataError:
            calibrator = None  # e.g. a holdout with one class: no label-free estimate
    else:
        # No labelled holdout (an unsupervised detector): the outputs on the training rows
        # are the reference of prediction drift; there is no label-free estimate.
        sample = rows.iloc[: min(len(rows), 20_000)]
        predictions = bundle.predict_frame(sample)
        outputs = build_output_profile(
            predictions.labels, predictions.proba, bundle.classes, seed=seed + 1
        )
    accuracy = bundle.metrics.get("accuracy")
    return MonitoringReference(
        features=features,
        outputs=outputs,
        calibrator=calibrator,
        reference_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
    )


def attach_reference(
    bundle: ModelBundle, training_rows: pd.DataFrame | None = None, *, seed: int = 0
) -> MonitoringReference:
    """Build the monitoring reference and store it in the bundle (saved with the version)."""
    reference = build_reference(bundle, training_rows, seed=seed)
    bundle.monitoring = reference.to_dict()
    return reference


def reference_for(bundle: ModelBundle) -> MonitoringReference:
    """The bundle's monitoring reference (built from its reference sample for old bundles)."""
    if bundle.monitoring is not None:
        return MonitoringReference.from_dict(bundle.monitoring)
    return attach_reference(bundle)
