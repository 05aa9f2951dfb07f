"""The baseline of benchmarks/serving.py: the usual way to serve a scikit-learn pipeline with
FastAPI. One ``def`` endpoint (run in the threadpool), a one-row DataFrame, predict_proba."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI

from driftline.models.bundle import MODEL_FILE
from driftline.schema import FeatureSchema

_folder = Path(os.environ["BARE_MODEL_DIR"])
with (_folder / MODEL_FILE).open("rb") as _pickled:
    _pipeline = pickle.load(_pickled).pipeline
_columns = list(FeatureSchema.from_json((_folder / "schema.json").read_text()).names)
_classes = [c.item() if isinstance(c, np.generic) else c for c in _pipeline.classes_]

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(body: dict[str, Any]) -> dict[str, Any]:
    frame = pd.DataFrame([body["features"]], columns=_columns)
    proba = _pipeline.predict_proba(frame)[0]
    best = int(np.argmax(proba))
    return {
        "prediction": _classes[best],
        "probabilities": {str(c): float(p) for c, p in zip(_classes, proba, strict=True)},
    }
