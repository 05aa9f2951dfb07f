"""Records the tests send and store: a request row of the synthetic loan domain, and a stored
prediction record as the writer receives it."""

from __future__ import annotations

import math
from typing import Any

from driftline.data import generate_loans


def row(i: int = 0) -> dict[str, Any]:
    frame = generate_loans(50, seed=21, with_target=False)
    record = frame.iloc[i % 50].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}


def prediction(rid: str, ts: float, version: int = 1, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "request_id": rid,
        "ts": ts,
        "model_name": "m",
        "model_version": version,
        "variant": "champion",
        "source": "api",
        "features": {"x": 1.0, "c": "a"},
        "prediction": "1",
        "probabilities": {"0": 0.25, "1": 0.75},
        "confidence": 0.75,
        "latency_ms": 1.5,
    }
    row.update(extra)
    return row
