"""Which label-free accuracy estimate a monitor report carries, and why.

The default is the doubly robust estimate of
:class:`~driftline.performance.ImportanceWeightedAccuracy` whenever it can run: the model is a
classifier with a calibrator, its monitoring reference keeps a labelled sample of the holdout
(:attr:`~driftline.monitoring.reference.MonitoringReference.labelled`), and the window's
buckets kept a uniform row sample covering every row of the CBPE sketch. The estimator falls
back to CBPE itself when the importance weights are unreliable (low effective sample size) or
when CBPE agrees with it within its error (the calibration holds where the traffic is). In
every other case the report carries CBPE's estimate, as before, with the reason.

Why this default: on issue 11's benchmark (``python benchmarks/detection_concept.py
--cbpe-only``), models that are wrong on purpose under pure covariate shift, the doubly robust
estimate's accuracy MAE is at worst 0.41× CBPE's, on well-specified models 1.00× CBPE's, and
its band covers the realized accuracy in ≥ 92% of windows; CBPE alone is optimistic by
0.03-0.06 there. Macro F1 and ROC AUC stay CBPE's.

The outcome model (cross-fitted gradient boosting on the labelled sample) depends only on the
reference, so it is fitted once per process and sample (:func:`fitted_estimator`); the density
ratio is fitted per check on the window's sample.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from driftline.errors import DataError
from driftline.monitoring.reference import MonitoringReference
from driftline.monitoring.sample import CONFIDENCE_COLUMN, LabelledSample, RowSample
from driftline.performance import ImportanceWeightedAccuracy, PerformanceEstimate

__all__ = [
    "ESTIMATORS",
    "MIN_WINDOW_SAMPLE",
    "AccuracyChoice",
    "choose_accuracy",
    "fitted_estimator",
]

#: Values of ``DRIFTLINE_MONITOR_ESTIMATOR``: ``auto`` (the doubly robust estimate when it can
#: run, else CBPE) or ``cbpe`` (always CBPE).
ESTIMATORS = ("auto", "cbpe")
#: Fewest window sample rows the density ratio is fitted on; below it the report keeps CBPE
#: (a domain classifier on a handful of rows says nothing).
MIN_WINDOW_SAMPLE = 200
#: Fitted outcome models kept per process (one per reference sample: champion, challenger, a
#: few past versions).
_CACHE_SIZE = 4
_cache: OrderedDict[str, ImportanceWeightedAccuracy] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class AccuracyChoice:
    """The report's estimate, the estimator behind its accuracy, and why."""

    estimated: PerformanceEstimate
    estimator: str
    reason: str
    detail: dict[str, Any]


def fitted_estimator(sample: LabelledSample) -> ImportanceWeightedAccuracy:
    """The doubly robust estimator fitted on ``sample`` (cached per process by its fingerprint:
    the cross-fitted outcome model is the costly part and depends on the reference alone)."""
    key = sample.fingerprint
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    # Fitted outside the lock (seconds); two threads racing both fit, the same result.
    with threadpool_limits(limits=1):
        estimator = ImportanceWeightedAccuracy().fit(
            sample.x.astype(np.float64), sample.correct, sample.confidence.astype(np.float64)
        )
    with _cache_lock:
        _cache[key] = estimator
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return estimator


def _cbpe(cbpe: PerformanceEstimate, reason: str, **detail: Any) -> AccuracyChoice:
    return AccuracyChoice(cbpe, "cbpe", reason, {"cbpe_accuracy": cbpe.accuracy, **detail})


def choose_accuracy(
    reference: MonitoringReference,
    sample: RowSample | None,
    cbpe: PerformanceEstimate,
    *,
    unsampled_rows: int = 0,
    estimator: str = "auto",
) -> AccuracyChoice:
    """The doubly robust estimate when it can run (see the module docstring), else CBPE."""
    if estimator == "cbpe":
        return _cbpe(cbpe, "CBPE chosen by configuration (DRIFTLINE_MONITOR_ESTIMATOR=cbpe)")
    labelled = reference.labelled
    if labelled is None:
        return _cbpe(
            cbpe,
            "the monitoring reference keeps no labelled sample (built before it, or no "
            "labelled holdout with features): re-register the version to add one",
        )
    if sample is None or sample.n == 0:
        return _cbpe(
            cbpe,
            "the window's buckets keep no row sample (written before it, or "
            "DRIFTLINE_MONITOR_SAMPLE_ROWS=0)",
        )
    if unsampled_rows > 0 or sample.seen != cbpe.n:
        return _cbpe(
            cbpe,
            f"the window's row sample covers {sample.seen:,} of its {cbpe.n:,} rows (some "
            "buckets were written without one): not uniform over the window",
        )
    if sample.n < MIN_WINDOW_SAMPLE:
        return _cbpe(
            cbpe,
            f"the window's row sample holds {sample.n} rows (< {MIN_WINDOW_SAMPLE})",
            window_sample_rows=sample.n,
        )
    if sample.columns != (*labelled.columns, CONFIDENCE_COLUMN):
        return _cbpe(cbpe, "the window's sample and the reference's encode different features")
    fitted = fitted_estimator(labelled)
    values = sample.values.astype(np.float64)
    try:
        # One native thread: the check runs beside the serving model thread, and OpenMP pools
        # of both on shared cores spin against each other (minutes instead of a second).
        with threadpool_limits(limits=1):
            found = fitted.estimate(
                values[:, :-1],
                cbpe,
                window_confidence=values[:, -1],
                window_rows=max(sample.seen, sample.n),
            )
    except DataError as exc:
        return _cbpe(cbpe, f"the doubly robust estimate failed: {exc}")
    detail = {
        "cbpe_accuracy": cbpe.accuracy,
        "effective_sample_size": found.effective_sample_size,
        "reference_sample_rows": labelled.n,
        "window_sample_rows": sample.n,
    }
    # CBPE's number when the estimator kept it, but the band is the estimator's in both
    # cases: it widens CBPE's where the two disagree (the benchmark's coverage is this band's).
    estimated = dataclasses.replace(
        cbpe,
        accuracy=found.accuracy,
        accuracy_lower=found.accuracy_lower,
        accuracy_upper=found.accuracy_upper,
    )
    return AccuracyChoice(estimated, found.estimator, found.reason, detail)
