"""Drift detection: batch tests over windows and streaming detectors over single values.

Each algorithm lives in its own module. The maps below are the registry: adding an algorithm is
a module, a line in a map and a test -- nothing registers itself on import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftline.drift.chi_square import chi_square_test, chi_square_test_counts
from driftline.drift.decision import (
    DatasetDrift,
    DriftPolicy,
    FeatureDrift,
    Severity,
    decide_drift,
    decide_prediction_drift,
)
from driftline.drift.jensen_shannon import jensen_shannon, jensen_shannon_counts
from driftline.drift.ks import ks_test, ks_test_counts
from driftline.drift.missing_rate import missing_rate_test, missing_rate_test_counts
from driftline.drift.multiple_testing import benjamini_hochberg, bonferroni
from driftline.drift.psi import psi, psi_counts
from driftline.drift.result import TestResult
from driftline.drift.total_variation import total_variation, total_variation_counts
from driftline.drift.wasserstein import (
    wasserstein_distance,
    wasserstein_test,
    wasserstein_test_binned,
)

#: Batch tests on two raw samples, by name: ``test(reference, current) -> TestResult``. Each
#: module also has a variant on counts over a profile's bins, which the drift decision uses.
BATCH_TESTS: dict[str, Callable[[Any, Any], TestResult]] = {
    "ks": ks_test,
    "chi_square": chi_square_test,
    "psi": psi,
    "wasserstein": wasserstein_test,
    "jensen_shannon": jensen_shannon,
    "total_variation": total_variation,
    "missing_rate": missing_rate_test,
}

if TYPE_CHECKING:
    from driftline.drift.adwin import ADWIN
    from driftline.drift.base import (
        Checkpointable,
        DirectionalDetector,
        DriftDetector,
        RiverDetector,
        WarningDetector,
    )
    from driftline.drift.concept_monitor import ConceptDriftMonitor, ConceptDriftStatus
    from driftline.drift.ddm import DDM
    from driftline.drift.hddm import HDDMA, HDDMW
    from driftline.drift.kswin import KSWIN
    from driftline.drift.page_hinkley import PageHinkley

    #: Streaming detectors (river's algorithms behind one protocol), by name.
    STREAMING_DETECTORS: dict[str, type[RiverDetector]]

#: Streaming detectors by name -> (module, class). They are river's algorithms, and importing
#: river costs ~1 s and pulls in its dataset and SQL helpers, so they load on first use: the
#: batch tests and the drift decision (``driftline.compare``) never import river.
_STREAMING = {
    "adwin": ("adwin", "ADWIN"),
    "page_hinkley": ("page_hinkley", "PageHinkley"),
    "kswin": ("kswin", "KSWIN"),
    "ddm": ("ddm", "DDM"),
    "hddm_a": ("hddm", "HDDMA"),
    "hddm_w": ("hddm", "HDDMW"),
}
#: Other names that live in river-backed modules, loaded on first use as well.
_LAZY = {
    **{cls: module for module, cls in _STREAMING.values()},
    "Checkpointable": "base",
    "DirectionalDetector": "base",
    "DriftDetector": "base",
    "RiverDetector": "base",
    "WarningDetector": "base",
    "ConceptDriftMonitor": "concept_monitor",
    "ConceptDriftStatus": "concept_monitor",
}


def __getattr__(name: str) -> Any:
    """Load river-backed names on first access (PEP 562)."""
    if name == "STREAMING_DETECTORS":
        detectors = {key: __getattr__(cls) for key, (_, cls) in _STREAMING.items()}
        globals()[name] = detectors
        return detectors
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ADWIN",
    "BATCH_TESTS",
    "DDM",
    "HDDMA",
    "HDDMW",
    "KSWIN",
    "STREAMING_DETECTORS",
    "Checkpointable",
    "ConceptDriftMonitor",
    "ConceptDriftStatus",
    "DatasetDrift",
    "DirectionalDetector",
    "DriftDetector",
    "DriftPolicy",
    "FeatureDrift",
    "PageHinkley",
    "RiverDetector",
    "Severity",
    "TestResult",
    "WarningDetector",
    "benjamini_hochberg",
    "bonferroni",
    "chi_square_test",
    "chi_square_test_counts",
    "decide_drift",
    "decide_prediction_drift",
    "jensen_shannon",
    "jensen_shannon_counts",
    "ks_test",
    "ks_test_counts",
    "missing_rate_test",
    "missing_rate_test_counts",
    "psi",
    "psi_counts",
    "total_variation",
    "total_variation_counts",
    "wasserstein_distance",
    "wasserstein_test",
    "wasserstein_test_binned",
]
