"""Training a model version from a table: split, fit, evaluate, keep a reference sample.

Pure of I/O: the CLI reads the data and registers the result; the retrain job calls the same
function with the data it assembled.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

import driftline
from driftline.errors import ConfigurationError, DataError
from driftline.models.base import Model
from driftline.models.bundle import PROBA_PREFIX, ModelBundle
from driftline.models.evaluation import classification_metrics
from driftline.models.online import ONLINE_KIND, ARFModel, continue_training
from driftline.models.sklearn import SKLEARN_KINDS, SklearnModel, build_pipeline
from driftline.schema import FeatureSchema, infer_schema

__all__ = [
    "MODEL_KINDS",
    "PROBA_PREFIX",
    "TrainResult",
    "continue_training_bundle",
    "frame_hash",
    "stratified_sample",
    "train_model",
]

MIN_ROWS_PER_CLASS = 5
#: Every kind ``train_model`` fits: the scikit-learn pipelines and river's ARF (online).
MODEL_KINDS: tuple[str, ...] = (*SKLEARN_KINDS, ONLINE_KIND)

Progress = Callable[[str], None]
RowsProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainResult:
    bundle: ModelBundle
    metrics: dict[str, Any]
    seconds: float


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a table (values and column names), to trace a version to its data."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def stratified_sample(frame: pd.DataFrame, size: int, *, by: str | None, seed: int) -> pd.DataFrame:
    """At most ``size`` rows, keeping the share of each value of ``by``."""
    if len(frame) <= size:
        return frame.reset_index(drop=True)
    if by is None:
        return frame.sample(n=size, random_state=seed).reset_index(drop=True)
    share = size / len(frame)
    parts = [
        group.sample(n=max(1, round(len(group) * share)), random_state=seed)
        for _, group in frame.groupby(by, sort=True)
    ]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def evaluation_frame(
    features: pd.DataFrame, y: pd.Series, proba: np.ndarray, classes: tuple[Any, ...], target: str
) -> pd.DataFrame:
    """Holdout rows with their label and the model's probability per class."""
    out = features.reset_index(drop=True).copy()
    out[target] = y.reset_index(drop=True)
    for j, c in enumerate(classes):
        out[f"{PROBA_PREFIX}{c}"] = proba[:, j]
    return out


def _online_meta(model: Model) -> dict[str, Any]:
    if not isinstance(model, ARFModel):
        return {}
    return {
        "n_models": model.n_models,
        "n_learned": model.n_learned,
        "renewed_trees": list(model.renewed_trees),
    }


def train_model(
    frame: pd.DataFrame,
    target: str,
    *,
    kind: str = "hgb",
    seed: int = 0,
    holdout: float = 0.25,
    reference_size: int = 10_000,
    allow_missing: bool = False,
    schema: FeatureSchema | None = None,
    progress: Progress | None = None,
    rows_progress: RowsProgress | None = None,
    continue_from: ARFModel | None = None,
    new_tree_share: float = 0.4,
    weights: pd.Series | None = None,
    reference_rows: pd.DataFrame | None = None,
) -> TrainResult:
    """Fit a model on ``frame`` and evaluate it on a stratified holdout.

    Parameters
    ----------
    frame
        Training table: feature columns and the ``target`` column.
    target
        The label column (two or more classes).
    kind
        ``hgb`` (histogram gradient boosting), ``rf`` (random forest), ``logreg``, or ``arf``
        (river's Adaptive Random Forest, an online model that learns the training rows one by
        one, in the split's shuffled order; see :class:`~driftline.models.online.ARFModel`).
    seed
        Seed of the split and the model.
    holdout
        Share of rows kept out of training for evaluation.
    reference_size
        Most rows kept as the reference sample.
    allow_missing
        Mark every feature nullable (otherwise only those with missing values in training).
    schema
        Use this schema instead of inferring one (retraining keeps the champion's).
    progress
        Called with the name of each step as it starts.
    rows_progress
        Called with ``(rows done, total)`` while an online model learns the training rows.
    continue_from
        For ``arf``: continue from this champion instead of starting afresh
        (:func:`~driftline.models.online.continue_training` with ``new_tree_share`` and
        ``seed``); pass the champion's schema too.
    new_tree_share
        Share of the champion's trees replaced by new ones when continuing.
    weights
        Sample weight per row of ``frame`` (same index), passed to the batch model's fit; the
        closed loop uses it to give drifted and base rows equal weight. Online models learn
        every row once, unweighted.
    reference_rows
        Rows to profile as the monitoring reference (default: the training split). A
        retrained challenger is profiled on the recent rows: the world it will serve.
    """
    started = time.perf_counter()
    step = progress or (lambda _name: None)
    if kind not in MODEL_KINDS:
        raise DataError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")
    if continue_from is not None and kind != ONLINE_KIND:
        raise DataError(f"only {ONLINE_KIND!r} models continue from a champion, not {kind!r}")
    step("inferring schema")
    if schema is None:
        schema = infer_schema(frame, target, allow_missing=allow_missing)
    data = frame.dropna(subset=[target])
    counts = data[target].value_counts()
    if (counts < MIN_ROWS_PER_CLASS).any():
        raise DataError(
            f"every class needs at least {MIN_ROWS_PER_CLASS} rows; got {counts.to_dict()}"
        )
    x = schema.coerce_frame(data)
    y = data[target]
    step("splitting")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=holdout, stratify=y, random_state=seed
    )
    step(f"fitting {kind}")
    model: Model
    if continue_from is not None:
        model = continue_training(
            continue_from,
            x_train,
            y_train,
            new_tree_share=new_tree_share,
            seed=seed,
            progress=rows_progress,
        )
    elif kind == ONLINE_KIND:
        online = ARFModel(schema, seed=seed)
        online.learn_many(x_train, y_train, progress=rows_progress)
        model = online
    else:
        pipeline = build_pipeline(schema, kind, seed=seed)
        fit_params: dict[str, Any] = {}
        if weights is not None:
            fit_params["model__sample_weight"] = weights.loc[x_train.index].to_numpy(float)
        pipeline.fit(x_train, y_train, **fit_params)
        model = SklearnModel(pipeline)
    step("evaluating on holdout")
    proba = model.predict_proba(x_test)
    metrics = classification_metrics(y_test.to_numpy(), proba, model.classes)
    step("keeping reference sample")
    train_rows = x_train.copy()
    train_rows[target] = y_train
    reference = stratified_sample(train_rows, reference_size, by=target, seed=seed)
    bundle = ModelBundle(
        model=model,
        schema=schema,
        kind=kind,
        metrics=metrics,
        reference=reference,
        evaluation=evaluation_frame(x_test, y_test, proba, model.classes, target),
        meta={
            "target": target,
            "seed": seed,
            "n_train": len(x_train),
            "n_holdout": len(x_test),
            "data_hash": frame_hash(frame),
            "driftline_version": driftline.__version__,
            "trained_at": time.time(),
            **_online_meta(model),
        },
    )
    step("profiling the reference")
    from driftline.monitoring.reference import attach_reference  # noqa: PLC0415 — monitoring/ loads the store

    attach_reference(
        bundle,
        x_train if reference_rows is None else schema.coerce_frame(reference_rows),
        seed=seed,
    )
    return TrainResult(bundle=bundle, metrics=metrics, seconds=time.perf_counter() - started)


def continue_training_bundle(
    champion: ModelBundle,
    frame: pd.DataFrame,
    *,
    target: str,
    seed: int = 0,
    new_tree_share: float = 0.4,
    holdout: float = 0.2,
) -> ModelBundle:
    """A challenger bundle continued from an online champion bundle, ready to register.

    ``frame`` (features and ``target``) is split like :func:`train_model` splits: the training
    part goes through :func:`~driftline.models.online.continue_training`, the holdout gives the
    challenger's metrics, evaluation frame and monitoring reference. The schema is the
    champion's; ``meta["continued_from"]`` is the champion's version.
    """
    if not isinstance(champion.model, ARFModel):
        raise ConfigurationError(
            f"version {champion.version} is a {champion.kind!r} model, not an online one"
        )
    result = train_model(
        frame,
        target,
        kind=ONLINE_KIND,
        seed=seed,
        holdout=holdout,
        schema=champion.schema,
        continue_from=champion.model,
        new_tree_share=new_tree_share,
    )
    bundle = result.bundle
    bundle.meta["continued_from"] = champion.version
    bundle.meta["new_tree_share"] = new_tree_share
    return bundle
