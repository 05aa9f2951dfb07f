"""Anomaly detection on host metrics: a synthetic host, detectors behind the Model protocol,
training into a model version, side-by-side comparison, a psutil sampler, a load generator, the
host watcher (with its Prometheus, Redis and registry edges) and training data from Prometheus.

The LSTM autoencoder (:mod:`driftline.anomaly.lstm`) needs the ``lstm`` extra and is not imported
here, so this package imports without torch.
"""

from __future__ import annotations

from driftline.anomaly.compare import ComparisonRow, compare_detectors, comparison_table
from driftline.anomaly.dataset import (
    ANOMALY_KINDS,
    KIND_COLUMN,
    LABEL_COLUMN,
    METRIC_COLUMNS,
    TIMESTAMP_COLUMN,
    generate_host_metrics,
)
from driftline.anomaly.detector_training import (
    DETECTOR_KINDS,
    PREDICTED_COLUMN,
    SCORE_COLUMN,
    block_split,
    detector_kind,
    make_detector,
    train_anomaly_bundle,
)
from driftline.anomaly.host import HostSampler
from driftline.anomaly.load import CpuLoad, run_load
from driftline.anomaly.models import (
    CLASSES,
    AnomalyDetector,
    IsolationForestDetector,
    SupervisedForestDetector,
    proba_from_score,
)
from driftline.anomaly.prometheus import (
    HOST_QUERIES,
    PrometheusError,
    Query,
    build_table,
    import_prometheus,
)
from driftline.anomaly.watch_io import HostMetrics, StreamPublisher, registering
from driftline.anomaly.watcher import (
    HostWatcher,
    RebaselineDecision,
    Trained,
    WatchEvent,
    WatchPolicy,
    decide_rebaseline,
)

__all__ = [
    "ANOMALY_KINDS",
    "CLASSES",
    "DETECTOR_KINDS",
    "HOST_QUERIES",
    "KIND_COLUMN",
    "LABEL_COLUMN",
    "METRIC_COLUMNS",
    "PREDICTED_COLUMN",
    "SCORE_COLUMN",
    "TIMESTAMP_COLUMN",
    "AnomalyDetector",
    "ComparisonRow",
    "CpuLoad",
    "HostMetrics",
    "HostSampler",
    "HostWatcher",
    "IsolationForestDetector",
    "PrometheusError",
    "Query",
    "RebaselineDecision",
    "StreamPublisher",
    "SupervisedForestDetector",
    "Trained",
    "WatchEvent",
    "WatchPolicy",
    "block_split",
    "build_table",
    "compare_detectors",
    "comparison_table",
    "decide_rebaseline",
    "detector_kind",
    "generate_host_metrics",
    "import_prometheus",
    "make_detector",
    "proba_from_score",
    "registering",
    "run_load",
    "train_anomaly_bundle",
]
