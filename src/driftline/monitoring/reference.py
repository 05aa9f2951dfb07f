"""What normal looks like for one model version: reference profiles, the CBPE calibrator and a
labelled sample of the holdout.

Built once at training time from the training rows (feature profile) and the holdout
(output profile, calibrator, reference accuracy, labelled sample), saved in the version's
bundle, and loaded by every worker and every monitor run — reference statistics are never
recomputed per check. The labelled sample (at most :data:`REFERENCE_SAMPLE_ROWS` holdout rows:
encoded features, whether the model was right, its calibrated confidence) is what the doubly
robust accuracy estimate re-weights to each window; references built before it have none and
their monitor reports keep CBPE's estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftline.errors import DataError
from driftline.models.bundle import PROBA_PREFIX, ModelBundle
from driftline.monitoring.sample import LabelledSample, encode_columns
from driftline.performance import Calibrator
from driftline.profiles import DatasetProfile, build_output_profile, build_reference_profile
from driftline.schema import label_text

__all__ = ["REFERENCE_SAMPLE_ROWS", "MonitoringReference", "attach_reference", "reference_for"]

#: Holdout rows kept (uniformly at random) as the labelled reference sample of the doubly
#: robust accuracy estimate. Its outcome model and density ratios are fitted on these rows, and
#: the weights are trusted only with an effective sample size of 200 of them: where the traffic
#: moves far, half as many rows means falling back to CBPE twice as often. Measured
#: (``benchmarks/monitor_samples.py``, linear model on a circle, 20 windows): 5,000 rows left
#: the estimate at 0.53x CBPE's error with a band covering 60% of windows; 10,000 rows, the
#: issue-11 benchmark's holdout, 0.04x and 100%. Cost: bundle bytes (8 × (features + 2) hex
#: characters per row, ~2 MB for 25 features) and the outcome model's fit (once per process).
REFERENCE_SAMPLE_ROWS = 10_000


@dataclass
class MonitoringReference:
    features: DatasetProfile
    outputs: DatasetProfile | None
    calibrator: Calibrator | None
    reference_accuracy: float | None
    #: Labelled holdout rows for the doubly robust estimate (None: built before it, or a
    #: model without a labelled holdout or calibrator).
    labelled: LabelledSample | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "features": self.features.to_dict(),
            "outputs": self.outputs.to_dict() if self.outputs is not None else None,
            "calibrator": self.calibrator.to_dict() if self.calibrator is not None else None,
            "reference_accuracy": self.reference_accuracy,
        }
        if self.labelled is not None:
            out["labelled_sample"] = self.labelled.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringReference:
        return cls(
            features=DatasetProfile.from_dict(data["features"]),
            outputs=(DatasetProfile.from_dict(data["outputs"]) if data.get("outputs") else None),
            calibrator=(
                Calibrator.from_dict(data["calibrator"]) if data.get("calibrator") else None
            ),
            reference_accuracy=data.get("reference_accuracy"),
            labelled=(
                LabelledSample.from_dict(data["labelled_sample"])
                if data.get("labelled_sample")
                else None
            ),
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


def labelled_sample(
    bundle: ModelBundle,
    calibrator: Calibrator,
    *,
    rows: int = REFERENCE_SAMPLE_ROWS,
    seed: int = 0,
) -> LabelledSample | None:
    """A uniform sample of at most ``rows`` labelled holdout rows (None without features in
    the bundle's evaluation frame)."""
    evaluation = bundle.evaluation
    holdout = _holdout(bundle)
    names = bundle.schema.names
    if evaluation is None or holdout is None or not all(n in evaluation.columns for n in names):
        return None
    labels, proba = holdout
    population = len(labels)
    if population < 2 or rows < 2:
        return None
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(population, min(rows, population), replace=False))
    predicted = proba[keep].argmax(axis=1)
    calibrated = calibrator.transform(proba[keep])
    classes = [label_text(c) for c in bundle.classes]
    correct = np.array(
        [classes[p] == label_text(y) for p, y in zip(predicted, labels[keep], strict=True)]
    )
    columns = {n: evaluation[n].to_numpy(dtype=object) for n in names}
    return LabelledSample(
        columns=names,
        x=encode_columns(bundle.schema, columns, keep).astype(np.float32),
        correct=correct.astype(np.float32),
        confidence=calibrated[np.arange(keep.size), predicted].astype(np.float32),
        population=population,
    )


def build_reference(
    bundle: ModelBundle,
    training_rows: pd.DataFrame | None = None,
    *,
    seed: int = 0,
    sample_rows: int = REFERENCE_SAMPLE_ROWS,
) -> MonitoringReference:
    """Profiles, calibrator and labelled sample of ``bundle``, from its training rows (or its
    reference sample) and its holdout."""
    rows = training_rows if training_rows is not None else bundle.reference
    if rows is None:
        raise DataError("a reference profile needs training rows or the bundle's reference sample")
    features = build_reference_profile(bundle.schema.coerce_frame(rows), bundle.schema, seed=seed)
    outputs: DatasetProfile | None = None
    calibrator: Calibrator | None = None
    labelled: LabelledSample | None = None
    holdout = _holdout(bundle)
    if holdout is not None:
        labels, proba = holdout
        predicted = [bundle.classes[i] for i in proba.argmax(axis=1)]
        outputs = build_output_profile(predicted, proba, bundle.classes, seed=seed + 1)
        try:
            calibrator = Calibrator().fit(labels, proba, bundle.classes)
        except DataError:
            calibrator = None  # e.g. a holdout with one class: no label-free estimate
        if calibrator is not None and sample_rows > 0:
            labelled = labelled_sample(bundle, calibrator, rows=sample_rows, seed=seed + 2)
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
        labelled=labelled,
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
