"""Traffic for the closed-loop tests: a drifted segment with a new repayment rule, sending it
(with labels) through the real app, waiting until it is stored, and a model that is mostly
wrong."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from driftline.data import TARGET, generate_loans, inject_drift
from driftline.data.synthetic import label_loans
from driftline.service.runtime import ServingRuntime
from driftline.training import train_model
from tests.monitoring.conftest import plain


def segment_drift(n: int, seed: int) -> pd.DataFrame:
    """High-debt applications flood in, and those follow a new repayment rule."""
    frame = generate_loans(n, seed=seed, with_target=False)
    frame = inject_drift(frame, "mean_shift", feature="debt_to_income", strength=2.0, seed=seed)
    frame[TARGET] = label_loans(frame, concept="segment", rng=np.random.default_rng(seed))
    return frame


def send(
    client: TestClient, frame: pd.DataFrame, prefix: str, *, labels: bool = True
) -> list[dict[str, Any]]:
    instances = [
        {
            "request_id": f"{prefix}-{i}",
            "features": {k: plain(v) for k, v in row.items() if k != TARGET},
        }
        for i, row in enumerate(frame.to_dict("records"))
    ]
    answers: list[dict[str, Any]] = []
    for start in range(0, len(instances), 250):
        r = client.post("/predict/batch", json={"instances": instances[start : start + 250]})
        assert r.status_code == 200, r.text
        answers.extend(r.json()["predictions"])
    if labels:
        rows = [
            {"request_id": f"{prefix}-{i}", "label": int(y)} for i, y in enumerate(frame[TARGET])
        ]
        for start in range(0, len(rows), 1000):
            r = client.post("/labels", json={"labels": rows[start : start + 1000]})
            assert r.status_code == 200, r.text
    return answers


def runtime(client: TestClient) -> ServingRuntime:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def settle(rt: ServingRuntime) -> None:
    """Wait until shadow copies are logged and every record is in the store."""
    deadline = time.monotonic() + 10
    while rt.shadows.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    rt.recorder.process_pending()
    rt.flush_buckets()
    assert rt.writer is not None and rt.writer.flush(10)


def bad_model(seed: int) -> Any:
    """A model trained on inverted labels: it answers quickly, and mostly wrong."""
    frame = generate_loans(6_000, seed=seed)
    frame[TARGET] = 1 - frame[TARGET]
    return train_model(frame, TARGET, kind="logreg", seed=seed).bundle
