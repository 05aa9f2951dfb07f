"""Holdout evaluation of a classifier: the metrics `driftline train` prints and the gate reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

__all__ = ["classification_metrics"]


def classification_metrics(
    y_true: Sequence[Any] | np.ndarray, proba: np.ndarray, classes: Sequence[Any]
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class precision/recall/F1/support, Cohen's
    kappa, ROC AUC, log loss, Brier score and the confusion matrix.

    ``proba`` columns follow ``classes``. ROC AUC is one-vs-rest macro for multiclass and is
    ``None`` when the holdout lacks a class. The Brier score is the multiclass form (mean
    squared distance to the one-hot truth, summed over classes), which for two classes is twice
    scikit-learn's binary ``brier_score_loss``; we report the binary form for two classes.

    >>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    >>> m = classification_metrics([0, 1, 1, 0], proba, [0, 1])
    >>> round(m["accuracy"], 2), round(m["roc_auc"], 2), m["confusion_matrix"]
    (0.75, 1.0, [[2, 0], [1, 1]])
    >>> m["per_class"][1]
    {'class': 1, 'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666, 'support': 2}
    >>> round(m["precision_macro"], 4), round(m["recall_macro"], 4)
    (0.8333, 0.75)
    """
    classes = list(classes)
    index = {str(c): i for i, c in enumerate(classes)}
    y_idx = np.array([index[str(v)] for v in y_true])
    proba = np.asarray(proba, dtype=np.float64)
    pred_idx = proba.argmax(axis=1)
    labels = list(range(len(classes)))
    onehot = np.eye(len(classes))[y_idx]
    present = set(y_idx.tolist())
    roc_auc: float | None
    if len(present) < len(classes):
        roc_auc = None
    elif len(classes) == 2:
        roc_auc = float(skm.roc_auc_score(y_idx, proba[:, 1]))
    else:
        roc_auc = float(skm.roc_auc_score(y_idx, proba, multi_class="ovr", average="macro"))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_idx, pred_idx, labels=labels, zero_division=0.0
    )
    plain = [c.item() if isinstance(c, np.generic) else c for c in classes]
    per_class = [
        {
            "class": plain[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in labels
    ]
    brier = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    if len(classes) == 2:
        brier /= 2.0
    return {
        "n": len(y_idx),
        "accuracy": float(skm.accuracy_score(y_idx, pred_idx)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(skm.f1_score(y_idx, pred_idx, average="macro", labels=labels)),
        "cohen_kappa": float(skm.cohen_kappa_score(y_idx, pred_idx, labels=labels)),
        "roc_auc": roc_auc,
        "log_loss": float(skm.log_loss(y_idx, np.clip(proba, 1e-15, 1.0), labels=labels)),
        "brier": brier,
        "confusion_matrix": skm.confusion_matrix(y_idx, pred_idx, labels=labels).tolist(),
        "per_class": per_class,
        "classes": plain,
    }
