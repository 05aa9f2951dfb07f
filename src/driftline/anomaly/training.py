"""Training an anomaly detector into a model version (:class:`ModelBundle`), like any model.

Host metrics are a time series and anomalies come in episodes, so a random row split would put
rows of the same episode on both sides and flatter the supervised forest. The holdout is made of
whole blocks of consecutive rows instead (:func:`block_split`), drawn with a seed.

The bundle's schema lists the metric columns only (``task="anomaly"``, classes
``("normal", "anomaly")``); timestamp, label and prediction columns are not features. When the
data carries ``is_anomaly``, the holdout is evaluated and kept as the bundle's evaluation frame,
whose label column ``label`` holds class names, as labels posted to the service would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

import driftline
from driftline.anomaly.dataset import KIND_COLUMN, LABEL_COLUMN, TIMESTAMP_COLUMN
from driftline.anomaly.models import (
    ANOMALY,
    CLASSES,
    NORMAL,
    AnomalyDetector,
    IsolationForestDetector,
    SupervisedForestDetector,
    binary_labels,
)
from driftline.errors import ConfigurationError, DataError
from driftline.models.bundle import ModelBundle
from driftline.models.evaluation import classification_metrics
from driftline.schema import infer_schema
from driftline.training import PROBA_PREFIX, frame_hash, stratified_sample

__all__ = [
    "DETECTOR_KINDS",
    "EVALUATION_LABEL",
    "NON_FEATURE_COLUMNS",
    "PREDICTED_COLUMN",
    "SCORE_COLUMN",
    "DetectorKind",
    "Split",
    "anomaly_metrics",
    "block_split",
    "detector_kind",
    "feature_columns",
    "make_detector",
    "score_in_blocks",
    "train_anomaly_bundle",
]

DetectorKind = Literal["iforest", "anomaly_rf", "lstm_ae"]
#: Bundle kinds of the detectors, in the order ``compare`` shows them.
DETECTOR_KINDS: Final[tuple[DetectorKind, ...]] = ("iforest", "anomaly_rf", "lstm_ae")
_ALIASES: Final[dict[str, DetectorKind]] = {
    "iforest": "iforest",
    "isolation_forest": "iforest",
    "rf": "anomaly_rf",
    "anomaly_rf": "anomaly_rf",
    "lstm": "lstm_ae",
    "lstm_ae": "lstm_ae",
}
SCORE_COLUMN: Final = "anomaly_score"
PREDICTED_COLUMN: Final = "predicted_anomaly"
#: Label column of a bundle's evaluation and reference frames (class names).
EVALUATION_LABEL: Final = "label"
NON_FEATURE_COLUMNS: Final = frozenset(
    {TIMESTAMP_COLUMN, LABEL_COLUMN, KIND_COLUMN, SCORE_COLUMN, PREDICTED_COLUMN}
)

Progress = Callable[[str], None]


def detector_kind(name: str) -> DetectorKind:
    """The bundle kind of a detector name (``rf`` → ``anomaly_rf``, ``lstm`` → ``lstm_ae``).

    >>> detector_kind("rf"), detector_kind("lstm"), detector_kind("iforest")
    ('anomaly_rf', 'lstm_ae', 'iforest')
    """
    try:
        return _ALIASES[name.strip().lower()]
    except KeyError:
        raise ConfigurationError(
            f"detector kind must be one of {sorted(_ALIASES)}, got {name!r}"
        ) from None


def make_detector(
    kind: str, *, contamination: float = 0.03, seed: int = 0
) -> AnomalyDetector:
    """An unfitted detector of ``kind`` (a name accepted by :func:`detector_kind`).

    ``contamination`` sets the threshold of the unsupervised kinds; the supervised forest
    learns its own from the labels.
    """
    resolved = detector_kind(kind)
    if resolved == "iforest":
        return IsolationForestDetector(contamination=contamination, seed=seed)
    if resolved == "anomaly_rf":
        return SupervisedForestDetector(seed=seed)
    from driftline.anomaly.lstm import LSTMAutoencoderDetector

    return LSTMAutoencoderDetector(contamination=contamination, seed=seed)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of ``frame``: everything but timestamp, labels and predictions."""
    features = [str(c) for c in frame.columns if c not in NON_FEATURE_COLUMNS]
    if not features:
        raise DataError(f"data has no metric columns; columns are {list(frame.columns)}")
    not_numeric = [
        c
        for c in features
        if not pd.api.types.is_numeric_dtype(frame[c].dtype)
        or pd.api.types.is_bool_dtype(frame[c].dtype)
    ]
    if not_numeric:
        raise DataError(f"anomaly detectors take numeric metrics; not numeric: {not_numeric}")
    return features


@dataclass(frozen=True)
class Split:
    """Row positions of a train/holdout split and the block of every row."""

    train: np.ndarray
    test: np.ndarray
    blocks: np.ndarray


def block_split(
    n: int,
    *,
    holdout: float = 0.25,
    block_rows: int = 360,
    seed: int = 0,
    labels: np.ndarray | None = None,
    kinds: np.ndarray | None = None,
    draws: int = 200,
) -> Split:
    """Hold out whole blocks of consecutive rows, drawn with a seed.

    Blocks are ``block_rows`` long (shorter when that would leave fewer than eight blocks).
    With ``labels``, the best of ``draws`` seeded draws is kept: first the one with the most
    anomaly kinds present on both sides (every anomaly is one kind when ``kinds`` is not
    given), then the one whose holdout share of anomalies is closest to the overall share.
    Labels choose which blocks are held out, never which rows.

    Parameters
    ----------
    n
        Number of rows.
    holdout
        Share of blocks held out, in ``(0, 1)``.
    block_rows
        Rows per block.
    seed
        Seed of the draw.
    labels
        Optional 0/1 labels to balance the split on.
    kinds
        Optional anomaly kind of every row (read on anomalous rows only).
    draws
        Candidate draws when ``labels`` are given.

    Example
    -------
    >>> split = block_split(40, holdout=0.25, block_rows=5, seed=0)
    >>> split.test.tolist()
    [25, 26, 27, 28, 29, 35, 36, 37, 38, 39]
    """
    if not 0.0 < holdout < 1.0:
        raise ConfigurationError(f"holdout must be in (0, 1), got {holdout}")
    if n < 2:
        raise DataError(f"need at least 2 rows to split, got {n}")
    size = max(1, min(block_rows, n // 8))
    blocks = np.arange(n) // size
    n_blocks = int(blocks[-1]) + 1
    n_test = min(n_blocks - 1, max(1, round(holdout * n_blocks)))
    rng = np.random.default_rng(seed)
    if labels is None:
        chosen = rng.choice(n_blocks, size=n_test, replace=False)
        is_test = np.isin(blocks, chosen)
        return Split(train=np.flatnonzero(~is_test), test=np.flatnonzero(is_test), blocks=blocks)
    anomalous = np.asarray(labels) == 1
    row_kinds = (
        np.asarray(kinds, dtype=object).astype(str)
        if kinds is not None
        else np.full(n, "anomaly", dtype=object)
    )
    kind_names = sorted(set(row_kinds[anomalous].tolist()))
    overall = float(anomalous.mean())
    best: np.ndarray | None = None
    best_key = (-1, np.inf)
    for _ in range(draws):
        chosen = rng.choice(n_blocks, size=n_test, replace=False)
        is_test = np.isin(blocks, chosen)
        both = sum(
            1
            for k in kind_names
            if (anomalous & is_test & (row_kinds == k)).any()
            and (anomalous & ~is_test & (row_kinds == k)).any()
        )
        key = (-both, abs(float(anomalous[is_test].mean()) - overall))
        if best is None or key < best_key:
            best, best_key = is_test, key
    assert best is not None
    return Split(train=np.flatnonzero(~best), test=np.flatnonzero(best), blocks=blocks)


def score_in_blocks(
    detector: AnomalyDetector, frame: pd.DataFrame, blocks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(score, proba)`` of ``frame``, one call per run of consecutive rows of a block.

    Windowed detectors must not see a window across two blocks that are not adjacent in time.
    """
    scores: list[np.ndarray] = []
    probas: list[np.ndarray] = []
    edges = np.flatnonzero(np.diff(blocks)) + 1
    for part in np.split(np.arange(len(frame)), edges):
        if len(part) == 0:
            continue
        rows = frame.iloc[part]
        scores.append(detector.score(rows))
        probas.append(detector.predict_proba(rows))
    if not scores:
        return np.zeros(0), np.zeros((0, 2))
    return np.concatenate(scores), np.concatenate(probas)


def anomaly_metrics(
    y_true: np.ndarray, score: np.ndarray, proba: np.ndarray
) -> dict[str, Any]:
    """Precision, recall and F1 of the flag (most probable class), ROC AUC of the score.

    Also the metrics every model version carries (:func:`classification_metrics`), so the gate
    and the dashboard read an anomaly detector like any binary classifier. ROC AUC is ``None``
    when the labels hold a single class.

    >>> m = anomaly_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]),
    ...                     np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]]))
    >>> m["precision"], m["recall"], m["f1"], m["roc_auc"]
    (0.5, 0.5, 0.5, 0.75)
    """
    y = np.asarray(y_true, dtype=np.int64)
    flagged = np.asarray(proba)[:, 1] > 0.5
    roc_auc = float(skm.roc_auc_score(y, score)) if len(set(y.tolist())) == 2 else None
    names = np.where(y == 1, ANOMALY, NORMAL)
    base = classification_metrics(names, proba, CLASSES)
    return {
        **base,
        "precision": float(skm.precision_score(y, flagged, zero_division=0)),
        "recall": float(skm.recall_score(y, flagged, zero_division=0)),
        "f1": float(skm.f1_score(y, flagged, zero_division=0)),
        "roc_auc": roc_auc,
        "n_anomalies": int(y.sum()),
        "n_flagged": int(flagged.sum()),
    }


def _recall_by_kind(kinds: pd.Series, y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in sorted(set(kinds[y == 1].astype(str))):
        rows = (kinds.astype(str).to_numpy() == kind) & (y == 1)
        out[kind] = float(flagged[rows].mean())
    return out


def train_anomaly_bundle(
    frame: pd.DataFrame,
    kind: str = "iforest",
    *,
    contamination: float = 0.03,
    seed: int = 0,
    holdout: float = 0.25,
    block_rows: int = 360,
    reference_size: int = 10_000,
    progress: Progress | None = None,
) -> ModelBundle:
    """Fit an anomaly detector on host metrics and package it as a model version.

    With an ``is_anomaly`` column, whole blocks of rows are held out (:func:`block_split`),
    the detector is fitted on the rest and evaluated on them (precision, recall, F1, ROC AUC,
    recall per ``anomaly_kind``). Without labels the detector is fitted on every row and the
    bundle has no evaluation; the supervised forest then cannot be trained.

    Parameters
    ----------
    frame
        Metrics in time order; ``timestamp``, ``is_anomaly`` and ``anomaly_kind`` are optional
        and are not features.
    kind
        ``iforest``, ``anomaly_rf`` (or ``rf``), ``lstm_ae`` (or ``lstm``, needs the extra).
    contamination
        Expected share of anomalies; sets the unsupervised detectors' threshold.
    seed
        Seed of the split and the detector.
    holdout
        Share of blocks held out when labeled.
    block_rows
        Rows per held-out block.
    reference_size
        Most training rows kept as the reference sample.
    progress
        Called with the name of each step as it starts.

    Example
    -------
    >>> from driftline.anomaly.dataset import generate_host_metrics
    >>> data = generate_host_metrics(3_000, seed=0)
    >>> bundle = train_anomaly_bundle(data, "iforest", seed=0)
    >>> bundle.kind, bundle.schema.task, bundle.schema.classes
    ('iforest', 'anomaly', ('normal', 'anomaly'))
    >>> bundle.schema.names  # doctest: +NORMALIZE_WHITESPACE
    ('cpu_percent', 'memory_percent', 'disk_percent', 'net_rx_bytes_per_s',
     'net_tx_bytes_per_s')
    >>> bundle.metrics["roc_auc"] > 0.8
    True
    """
    started = time.perf_counter()
    step = progress or (lambda _name: None)
    resolved = detector_kind(kind)
    features = feature_columns(frame)
    labeled = LABEL_COLUMN in frame.columns
    if resolved == "anomaly_rf" and not labeled:
        raise DataError(
            f"the supervised forest needs labeled anomalies: a '{LABEL_COLUMN}' column (0/1)"
        )
    step("inferring schema")
    schema = infer_schema(frame[features], target=None)
    schema = replace(schema, classes=CLASSES, task="anomaly")
    x = schema.coerce_frame(frame).reset_index(drop=True)
    detector = make_detector(resolved, contamination=contamination, seed=seed)
    metrics: dict[str, Any] = {}
    evaluation: pd.DataFrame | None = None
    if labeled:
        y = binary_labels(frame[LABEL_COLUMN].to_numpy())
        step("splitting into blocks")
        split = block_split(
            len(x),
            holdout=holdout,
            block_rows=block_rows,
            seed=seed,
            labels=y,
            kinds=frame[KIND_COLUMN].to_numpy() if KIND_COLUMN in frame.columns else None,
        )
        x_train, y_train = x.iloc[split.train], y[split.train]
        step(f"fitting {resolved} on {len(x_train):,} rows")
        fit_started = time.perf_counter()
        detector.fit(x_train, y_train)
        fit_seconds = time.perf_counter() - fit_started
        step("evaluating on holdout")
        x_test, y_test = x.iloc[split.test], y[split.test]
        score, proba = score_in_blocks(detector, x_test, split.blocks[split.test])
        metrics = anomaly_metrics(y_test, score, proba)
        metrics["fit_seconds"] = fit_seconds
        if KIND_COLUMN in frame.columns:
            kinds = frame[KIND_COLUMN].iloc[split.test].reset_index(drop=True)
            metrics["recall_by_kind"] = _recall_by_kind(kinds, y_test, proba[:, 1] > 0.5)
        evaluation = x_test.reset_index(drop=True).copy()
        evaluation[EVALUATION_LABEL] = np.where(y_test == 1, ANOMALY, NORMAL)
        if KIND_COLUMN in frame.columns:
            evaluation[KIND_COLUMN] = frame[KIND_COLUMN].iloc[split.test].to_numpy()
        evaluation[SCORE_COLUMN] = score
        for j, name in enumerate(CLASSES):
            evaluation[f"{PROBA_PREFIX}{name}"] = proba[:, j]
        train_rows = x_train.reset_index(drop=True).copy()
        train_rows[EVALUATION_LABEL] = np.where(y_train == 1, ANOMALY, NORMAL)
        reference = stratified_sample(train_rows, reference_size, by=EVALUATION_LABEL, seed=seed)
        n_train, n_holdout = len(x_train), len(x_test)
    else:
        step(f"fitting {resolved} on {len(x):,} rows")
        fit_started = time.perf_counter()
        detector.fit(x)
        metrics["fit_seconds"] = time.perf_counter() - fit_started
        metrics["flagged_share_train"] = float(np.mean(detector.flag(x)))
        reference = stratified_sample(x, reference_size, by=None, seed=seed)
        n_train, n_holdout = len(x), 0
    bundle = ModelBundle(
        model=detector,
        schema=schema,
        kind=resolved,
        metrics=metrics,
        reference=reference,
        evaluation=evaluation,
        meta={
            "target": EVALUATION_LABEL if labeled else None,
            "seed": seed,
            "contamination": contamination,
            "n_train": n_train,
            "n_holdout": n_holdout,
            "data_hash": frame_hash(frame),
            "driftline_version": driftline.__version__,
            "trained_at": time.time(),
            "train_seconds": time.perf_counter() - started,
        },
    )
    step("profiling the reference")
    from driftline.monitoring.reference import attach_reference

    attach_reference(bundle, x_train if labeled else x, seed=seed)
    return bundle

