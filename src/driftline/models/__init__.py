"""Model kinds behind one protocol (:class:`Model`), and the bundle a version is stored as."""

from __future__ import annotations

from driftline.models.base import Model, OnlineModel, Predictions
from driftline.models.bundle import ModelBundle
from driftline.models.evaluation import classification_metrics
from driftline.models.online import ARFModel, continue_training
from driftline.models.sklearn import SklearnModel, build_pipeline

__all__ = [
    "ARFModel",
    "Model",
    "ModelBundle",
    "OnlineModel",
    "Predictions",
    "SklearnModel",
    "build_pipeline",
    "classification_metrics",
    "continue_training",
]
