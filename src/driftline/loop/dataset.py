"""The challenger's training data: recent labelled production rows plus a share of base data.

Every labelled production sample since the drift anchor is kept (``source = "drift"``); rows
of the champion's own training sample are added (``source = "base"``, stratified by class, up
to ``base_rows``), so the challenger learns the new world without forgetting the old one.
The two are *concept-balanced*: a ``weight`` column gives the drift rows together the same
total weight as the base rows, however few they are (a handful of recent labels would
otherwise drown in the base data, and a model trained on them alone forgets the rest).
A stratified share of the drift rows is held out to judge champion
and challenger on recent data; the champion's own holdout (never trained on by either) is the
base holdout of the no-forgetting check. Optionally SMOTE oversamples minority classes of
the training part. The whole assembled table is snapshotted with a content hash.

Pure: frames in, frames out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from driftline.errors import DataError

__all__ = ["SOURCE", "WEIGHT", "TrainingData", "assemble", "production_frame", "snapshot"]

#: Column tagging each row's origin: ``drift`` (production), ``base`` (training sample) or
#: ``smote`` (synthetic minority rows).
SOURCE = "source"
#: Column of sample weights of the training part.
WEIGHT = "weight"
MIN_ROWS_PER_CLASS = 5


@dataclass(frozen=True)
class TrainingData:
    """The assembled data of one retrain.

    ``train`` carries the ``source`` and ``weight`` columns (drop them from the features,
    fit with the weights); ``recent_holdout`` is
    drift rows only; ``table`` is everything (train + holdout, with a ``split`` column) —
    what is snapshotted.
    """

    train: pd.DataFrame
    recent_holdout: pd.DataFrame
    table: pd.DataFrame
    target: str
    n_drift: int
    n_base: int
    n_smote: int

    @property
    def content_hash(self) -> str:
        return frame_digest(self.table)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": len(self.table),
            "drift_rows": self.n_drift,
            "base_rows": self.n_base,
            "smote_rows": self.n_smote,
            "train_rows": len(self.train),
            "recent_holdout_rows": len(self.recent_holdout),
            "data_hash": self.content_hash,
        }


def frame_digest(frame: pd.DataFrame) -> str:
    """A content hash of a table (values, column names and order)."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def production_frame(
    rows: list[dict[str, Any]], *, target: str, classes: tuple[Any, ...]
) -> pd.DataFrame:
    """Labelled predictions (``queries.labeled_predictions``) as a feature table + target.

    Labels are stored as text; they are mapped back to the champion's classes, and rows whose
    label is not one of them are dropped (they cannot be learned by a same-schema model).
    """
    by_text = {str(c): c for c in classes}
    records: list[dict[str, Any]] = []
    for row in rows:
        label = by_text.get(str(row["label"]))
        if label is None:
            continue
        records.append({**row["features"], target: label, "_ts": row["ts"]})
    if not records:
        return pd.DataFrame(columns=[target])
    frame = pd.DataFrame.from_records(records).sort_values("_ts", kind="stable")
    return frame.drop(columns="_ts").reset_index(drop=True)


def _stratified_take(frame: pd.DataFrame, n: int, *, by: str, seed: int) -> pd.DataFrame:
    if n >= len(frame):
        return frame
    if n <= 0:
        return frame.iloc[:0]
    taken, _ = train_test_split(frame, train_size=n, stratify=frame[by], random_state=seed)
    return pd.DataFrame(taken)


def assemble(
    drift: pd.DataFrame,
    base: pd.DataFrame,
    *,
    target: str,
    base_rows: int = 10_000,
    balance: bool = True,
    holdout: float = 0.25,
    smote: bool = False,
    seed: int = 0,
) -> TrainingData:
    """Merge drift and base rows into a training set and a recent holdout.

    Parameters
    ----------
    drift
        Labelled production rows since the anchor (all of them are used).
    base
        The champion's training sample (features + ``target``).
    base_rows
        Most base rows to add (default 10,000; 0 trains on drift rows only).
    balance
        Weight drift rows so that together they weigh as much as the base rows.
    holdout
        Share of the drift rows kept out for the gate (stratified).
    smote
        Oversample minority classes of the training part with SMOTE (imbalanced-learn).
    seed
        Seed of every random choice.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> drift = pd.DataFrame({"x": rng.normal(size=200), "y": rng.integers(0, 2, 200)})
    >>> base = pd.DataFrame({"x": rng.normal(size=1000), "y": rng.integers(0, 2, 1000)})
    >>> data = assemble(drift, base, target="y", base_rows=600)
    >>> data.n_drift, data.n_base, len(data.recent_holdout)
    (200, 600, 50)
    >>> data.train.groupby("source")["weight"].sum().round(6).to_dict()
    {'base': 600.0, 'drift': 600.0}
    """
    if target not in drift.columns:
        raise DataError(f"the production rows have no label column {target!r}")
    if base_rows < 0:
        raise DataError(f"base_rows must be >= 0, got {base_rows}")
    if not 0 < holdout < 1:
        raise DataError(f"holdout must be in (0, 1), got {holdout}")
    drift = drift.dropna(subset=[target])
    counts = drift[target].value_counts()
    if len(counts) < 2 or (counts < MIN_ROWS_PER_CLASS).any():
        raise DataError(
            "not enough labelled production rows to retrain: every class needs at least "
            f"{MIN_ROWS_PER_CLASS}, got {counts.to_dict()}"
        )
    drift_train, recent_holdout = train_test_split(
        drift, test_size=holdout, stratify=drift[target], random_state=seed
    )
    drift_train = drift_train.assign(**{SOURCE: "drift"})
    recent_holdout = recent_holdout.assign(**{SOURCE: "drift"})
    base_pool = base.dropna(subset=[target]) if target in base.columns else base.iloc[:0]
    base_take = _stratified_take(base_pool, base_rows, by=target, seed=seed).assign(
        **{SOURCE: "base"}
    )
    train = pd.concat([drift_train, base_take], ignore_index=True)
    n_smote = 0
    if smote:
        train, n_smote = _smote(train, target=target, seed=seed)
    is_base = (train[SOURCE] == "base").to_numpy()
    n_recent = int((~is_base).sum())
    ratio = len(base_take) / n_recent if balance and len(base_take) and n_recent else 1.0
    train[WEIGHT] = np.where(is_base, 1.0, max(ratio, 1.0))
    train = train.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    table = pd.concat(
        [train.assign(split="train"), recent_holdout.assign(split="holdout")], ignore_index=True
    )
    return TrainingData(
        train=train,
        recent_holdout=recent_holdout.reset_index(drop=True),
        table=table,
        target=target,
        n_drift=len(drift),
        n_base=len(base_take),
        n_smote=n_smote,
    )


def _smote(train: pd.DataFrame, *, target: str, seed: int) -> tuple[pd.DataFrame, int]:
    """SMOTE-NC over numeric and categorical columns; new rows get ``source = "smote"``."""
    try:
        from imblearn.over_sampling import SMOTE, SMOTENC  # noqa: PLC0415 — the imbalanced extra
    except ImportError as exc:  # pragma: no cover - the extra is in the dev set
        raise DataError(
            "SMOTE needs imbalanced-learn: pip install 'driftline[imbalanced]'"
        ) from exc
    features = train.drop(columns=[target, SOURCE, WEIGHT], errors="ignore")
    # Booleans are numbers to SMOTE (interpolated, then rounded back). Production rows come
    # from JSON, so a boolean feature with missing values is an object column of True/False/
    # None: it must not be mistaken for a categorical one (its values would become the
    # strings "True"/"False", which the model's schema then refuses).
    boolean = [c for c in features.columns if _is_boolean(features[c])]
    categorical = [
        c
        for c in features.columns
        if c not in boolean and not pd.api.types.is_numeric_dtype(features[c])
    ]
    numeric = [c for c in features.columns if c not in categorical]
    # SMOTE interpolates: impute missing values first (median / most frequent).
    filled = features.copy()
    for c in numeric:
        if c in boolean:
            filled[c] = filled[c].map(lambda v: np.nan if v is None else float(v))
        filled[c] = pd.to_numeric(filled[c], errors="coerce").astype(float)
        filled[c] = filled[c].fillna(filled[c].median() if filled[c].notna().any() else 0.0)
    for c in categorical:
        mode = filled[c].mode(dropna=True)
        # Through pandas' string dtype: fillna on an object column warns (pandas 2) that it
        # will stop downcasting the result.
        fill = str(mode.iloc[0]) if len(mode) else "missing"
        filled[c] = filled[c].astype("string").fillna(fill).astype(str)
    smallest = int(train[target].value_counts().min())
    k = max(1, min(5, smallest - 1))
    sampler: Any
    if categorical:
        idx = [filled.columns.get_loc(c) for c in categorical]
        sampler = SMOTENC(categorical_features=idx, k_neighbors=k, random_state=seed)
    else:
        sampler = SMOTE(k_neighbors=k, random_state=seed)
    x_res, y_res = sampler.fit_resample(filled, train[target])
    extra = len(x_res) - len(train)
    if extra <= 0:
        return train, 0
    new_rows = pd.DataFrame(x_res).iloc[len(train) :].copy()
    new_rows[target] = np.asarray(y_res)[len(train) :]
    new_rows[SOURCE] = "smote"
    for c in boolean:  # booleans stay booleans
        new_rows[c] = new_rows[c].astype(float).round().astype(bool)
    return pd.concat([train, new_rows[train.columns]], ignore_index=True), extra


def _is_boolean(column: pd.Series[Any]) -> bool:
    """A bool column, or an object column of booleans, possibly mixed with 0/1 numbers (the
    champion's reference rows hold booleans as 0.0/1.0, production rows as True/False)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return True
    if column.dtype != object:
        return False
    present = column.dropna()
    flags = [isinstance(v, bool | np.bool_) for v in present]
    return any(flags) and all(
        flag or (isinstance(v, int | float | np.number) and v in (0, 1))
        for flag, v in zip(flags, present, strict=True)
    )


def snapshot(data: TrainingData, folder: Path) -> Path:
    """Write the assembled table as ``<hash>.parquet`` in ``folder``; returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"training-{data.content_hash}.parquet"
    table = data.table.copy()
    for c in table.columns:  # Parquet needs one type per column
        if table[c].dtype == object:
            table[c] = table[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    table.to_parquet(path, index=False)
    return path
