"""Train every detector kind on the same split of labeled metrics and compare them.

One seeded block split (:func:`~driftline.anomaly.detector_training.block_split`) is shared by all
kinds, so the numbers differ only by the detector. The supervised forest sees the training
labels; the Isolation Forest ignores them; the LSTM autoencoder uses them only to leave
anomalous windows out of training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
from rich.markup import escape
from rich.table import Table

from driftline.anomaly.dataset import KIND_COLUMN, LABEL_COLUMN
from driftline.anomaly.detector_training import (
    DETECTOR_KINDS,
    anomaly_metrics,
    block_split,
    detector_kind,
    feature_columns,
    make_detector,
    score_in_blocks,
)
from driftline.anomaly.lstm import EXTRA_HINT, torch_available
from driftline.anomaly.models import binary_labels
from driftline.errors import DataError

__all__ = ["ComparisonRow", "compare_detectors", "comparison_table"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ComparisonRow:
    """One detector's holdout results; metrics are ``None`` when the kind was skipped."""

    kind: str
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    fit_seconds: float | None
    n_flagged: int | None
    note: str = ""
    n_holdout: int | None = None
    n_anomalies: int | None = None


def compare_detectors(
    frame: pd.DataFrame,
    *,
    kinds: Sequence[str] = DETECTOR_KINDS,
    contamination: float = 0.03,
    seed: int = 0,
    holdout: float = 0.25,
    block_rows: int = 360,
    progress: Progress | None = None,
) -> list[ComparisonRow]:
    """Fit each kind on the same training blocks and score the same holdout blocks.

    Parameters
    ----------
    frame
        Labeled metrics in time order (an ``is_anomaly`` column is required).
    kinds
        Detector kinds, as accepted by :func:`~driftline.anomaly.detector_training.detector_kind`.
        ``lstm_ae`` is reported as skipped, with the install hint, when torch is missing.
    contamination
        Expected anomaly share given to the unsupervised detectors.
    seed
        Seed of the split and of every detector.
    holdout
        Share of blocks held out.
    block_rows
        Rows per block.
    progress
        Called with the name of each step as it starts.

    Example
    -------
    >>> from driftline.anomaly.dataset import generate_host_metrics
    >>> data = generate_host_metrics(3_000, seed=0)
    >>> rows = compare_detectors(data, kinds=["iforest", "rf"], seed=0)
    >>> [(r.kind, r.roc_auc is not None and r.roc_auc > 0.8) for r in rows]
    [('iforest', True), ('anomaly_rf', True)]
    """
    if LABEL_COLUMN not in frame.columns:
        raise DataError(f"comparing detectors needs labels: a '{LABEL_COLUMN}' column (0/1)")
    step = progress or (lambda _name: None)
    resolved = [detector_kind(k) for k in kinds]
    features = feature_columns(frame)
    x = frame[features].astype("float64").reset_index(drop=True)
    y = binary_labels(frame[LABEL_COLUMN].to_numpy())
    split = block_split(
        len(x),
        holdout=holdout,
        block_rows=block_rows,
        seed=seed,
        labels=y,
        kinds=frame[KIND_COLUMN].to_numpy() if KIND_COLUMN in frame.columns else None,
    )
    x_train, y_train = x.iloc[split.train], y[split.train]
    x_test, y_test = x.iloc[split.test], y[split.test]
    rows: list[ComparisonRow] = []
    for kind in resolved:
        if kind == "lstm_ae" and not torch_available():
            rows.append(
                ComparisonRow(
                    kind,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    f"skipped: {EXTRA_HINT}",
                    n_holdout=len(x_test),
                    n_anomalies=int(y_test.sum()),
                )
            )
            continue
        step(f"fitting {kind} on {len(x_train):,} rows")
        detector = make_detector(kind, contamination=contamination, seed=seed)
        started = time.perf_counter()
        detector.fit(x_train, y_train)
        fit_seconds = time.perf_counter() - started
        step(f"scoring {kind} on {len(x_test):,} holdout rows")
        score, proba = score_in_blocks(detector, x_test, split.blocks[split.test])
        m = anomaly_metrics(y_test, score, proba)
        rows.append(
            ComparisonRow(
                kind=kind,
                precision=m["precision"],
                recall=m["recall"],
                f1=m["f1"],
                roc_auc=m["roc_auc"],
                fit_seconds=fit_seconds,
                n_flagged=m["n_flagged"],
                n_holdout=len(x_test),
                n_anomalies=m["n_anomalies"],
            )
        )
    return rows


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_table(rows: Sequence[ComparisonRow], *, title: str | None = None) -> Table:
    """A Rich table with one line per detector; the best value of each metric in bold. The
    caption gives the size of the shared holdout and its labeled anomalies."""
    table = Table(title=title or "Anomaly detectors on the same holdout")
    sized = next((r for r in rows if r.n_holdout is not None), None)
    if sized is not None:
        table.caption = (
            f"same holdout for every detector: {sized.n_holdout:,} rows in whole blocks, "
            f"{sized.n_anomalies:,} labeled anomalies"
        )
    table.add_column("detector")
    for name in ("precision", "recall", "F1", "ROC AUC", "flagged", "fit s"):
        table.add_column(name, justify="right")
    table.add_column("note")
    best = {
        name: max((getattr(r, name) for r in rows if getattr(r, name) is not None), default=None)
        for name in ("precision", "recall", "f1", "roc_auc")
    }

    def metric(row: ComparisonRow, name: str) -> str:
        value = getattr(row, name)
        text = _cell(value)
        return f"[bold]{text}[/]" if value is not None and value == best[name] else text

    for r in rows:
        table.add_row(
            r.kind,
            metric(r, "precision"),
            metric(r, "recall"),
            metric(r, "f1"),
            metric(r, "roc_auc"),
            "-" if r.n_flagged is None else str(r.n_flagged),
            _cell(r.fit_seconds, 2),
            escape(r.note),
        )
    return table
