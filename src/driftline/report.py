"""The report body: the drift, quality and performance verdicts of one comparison as JSON.

Pure and light (no store, no registry, no web framework): the monitor job builds its reports
here from live windows, and :func:`driftline.compare` from two data frames -- one path, so a
notebook comparison and a live report say the same thing about the same rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.drift.decision import (
    DatasetDrift,
    DriftPolicy,
    decide_drift,
    decide_prediction_drift,
)
from driftline.profiles import CategoricalProfile, DatasetProfile, NumericProfile
from driftline.quality import QualityPolicy, QualityReport, check_quality

__all__ = [
    "SEVERITY_CODE",
    "Assessment",
    "assess",
    "distributions",
    "drift_body",
    "estimator_label",
    "jsonable",
    "overall_status",
    "quality_body",
]

#: How reports name the label-free accuracy estimators (``performance.estimator``).
ESTIMATOR_LABELS = {"doubly_robust": "doubly robust", "cbpe": "CBPE"}


def estimator_label(name: str | None) -> str:
    """A report's accuracy estimator as people read it (reports before the field: CBPE).

    >>> estimator_label("doubly_robust"), estimator_label(None)
    ('doubly robust', 'CBPE')
    """
    return ESTIMATOR_LABELS.get(name or "cbpe", str(name))


#: Severity as a number, for gauges and for "the worst of" comparisons.
SEVERITY_CODE = {"insufficient_data": -1, "none": 0, "warning": 1, "critical": 2}


def jsonable(value: Any) -> Any:
    """Plain JSON values (no NaN/inf — PostgreSQL's JSONB refuses them — and no numpy)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return value


def drift_body(drift: DatasetDrift) -> dict[str, Any]:
    return {
        "severity": drift.severity,
        "n_tested": drift.n_tested,
        "n_drifted": drift.n_drifted,
        "share_drifted": drift.share_drifted,
        "n_reference_rows": drift.n_reference_rows,
        "n_current_rows": drift.n_current_rows,
        "alpha": drift.alpha,
        "reasons": list(drift.reasons),
        "features": [jsonable(dataclasses.asdict(f)) for f in drift.features],
    }


def quality_body(report: QualityReport) -> dict[str, Any]:
    return {
        "severity": report.severity,
        "insufficient_data": report.insufficient_data,
        "n_rows": report.n_rows,
        "rejected": report.rejected,
        "findings": [jsonable(dataclasses.asdict(f)) for f in report.findings],
    }


def _shares(counts: Any) -> list[float]:
    total = float(np.sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]


def distributions(reference: DatasetProfile, current: DatasetProfile | None) -> dict[str, Any]:
    """Reference and current bin shares per feature, for charts."""
    out: dict[str, Any] = {}
    ref_features = reference.features
    cur_features = current.features if current is not None else {}
    for name, ref in ref_features.items():
        cur = cur_features.get(name)
        if isinstance(ref, NumericProfile):
            out[name] = {
                "kind": "numeric",
                "edges": jsonable(ref.edges),
                "reference": _shares(ref.counts),
                "current": _shares(cur.counts) if cur is not None else None,
                "missing_reference": ref.missing_rate,
                "missing_current": cur.missing_rate if cur is not None else None,
            }
        elif isinstance(ref, CategoricalProfile):
            out[name] = {
                "kind": "categorical",
                "categories": [*ref.categories, "(unseen)"],
                "reference": _shares(ref.counts),
                "current": _shares(cur.counts) if cur is not None else None,
                "missing_reference": ref.missing_rate,
                "missing_current": cur.missing_rate if cur is not None else None,
            }
    return out


def overall_status(body: Mapping[str, Any]) -> str:
    codes = [
        SEVERITY_CODE.get(body["data_drift"]["severity"], 0),
        SEVERITY_CODE.get(body["prediction_drift"]["severity"], 0)
        if body.get("prediction_drift")
        else -1,
    ]
    if body["quality"]["severity"] == "hard":
        codes.append(2)
    elif body["quality"]["severity"] == "soft":
        codes.append(1)
    if body["concept_drift"].get("state") == "drift_confirmed":
        codes.append(2)
    worst = max(codes)
    if worst < 0:
        return "insufficient_data"
    return {0: "ok", 1: "warning", 2: "critical"}[worst]


@dataclass(frozen=True)
class Assessment:
    """The verdicts of one comparison of current data (or a live window) with a reference."""

    data_drift: DatasetDrift
    prediction_drift: DatasetDrift | None
    quality: QualityReport


def assess(
    reference: DatasetProfile,
    current: DatasetProfile | None,
    *,
    reference_outputs: DatasetProfile | None = None,
    current_outputs: DatasetProfile | None = None,
    rejected: int = 0,
    drift_policy: DriftPolicy | None = None,
    quality_policy: QualityPolicy | None = None,
) -> Assessment:
    """Data drift, prediction drift (when there are output profiles) and data quality.

    ``current`` None (or ``current_outputs`` None) means no rows: the verdicts are then
    "insufficient_data" rather than an error.
    """
    features = current or reference.empty_like(seed=0)
    data_drift = decide_drift(reference, features, policy=drift_policy)
    prediction_drift = None
    if reference_outputs is not None:
        outputs = current_outputs or reference_outputs.empty_like(seed=0)
        prediction_drift = decide_prediction_drift(reference_outputs, outputs, policy=drift_policy)
    quality = check_quality(reference, features, rejected=rejected, policy=quality_policy)
    return Assessment(data_drift=data_drift, prediction_drift=prediction_drift, quality=quality)
