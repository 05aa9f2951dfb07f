"""Traffic with known drift, sent through the real app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from driftline.config import Settings
from driftline.data import TARGET, generate_loans, inject_drift
from driftline.data.synthetic import label_loans
from driftline.registry import Registry
from driftline.service import create_app
from driftline.service.runtime import ServingRuntime
from driftline.store import open_store
from driftline.training import train_model


def plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value


def send(client: TestClient, frame: pd.DataFrame, prefix: str, *, labels: bool = True) -> None:
    instances = [
        {
            "request_id": f"{prefix}-{i}",
            "features": {k: plain(v) for k, v in row.items() if k != TARGET},
        }
        for i, row in enumerate(frame.to_dict("records"))
    ]
    for start in range(0, len(instances), 500):
        r = client.post("/predict/batch", json={"instances": instances[start : start + 500]})
        assert r.status_code == 200, r.text
    if labels:
        rows = [
            {"request_id": f"{prefix}-{i}", "label": int(y)} for i, y in enumerate(frame[TARGET])
        ]
        for start in range(0, len(rows), 1000):
            assert (
                client.post("/labels", json={"labels": rows[start : start + 1000]}).status_code
                == 200
            )


def drifted(n: int, seed: int) -> pd.DataFrame:
    frame = generate_loans(n, seed=seed)
    frame = inject_drift(frame, "mean_shift", feature="income", strength=0.5, seed=seed)
    frame[TARGET] = label_loans(frame, concept="shifted", rng=np.random.default_rng(seed))
    return frame


def runtime(client: TestClient) -> ServingRuntime:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def settle(client: TestClient) -> None:
    rt = runtime(client)
    rt.flush_buckets()
    assert rt.writer is not None and rt.writer.flush(10)


@pytest.fixture(scope="module")
def loan_bundle() -> Any:
    return train_model(generate_loans(8_000, seed=1), TARGET, kind="logreg").bundle


@pytest.fixture
def served(settings: Settings, loan_bundle: Any) -> Iterator[TestClient]:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(loan_bundle, actor="test")
    store.dispose()
    quiet = settings.model_copy(update={"scheduler": False})
    with TestClient(create_app(quiet)) as client:
        yield client
