from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.models import ModelBundle, Predictions
from driftline.schema import FeatureSchema, FeatureSpec
from driftline.service.batcher import MicroBatcher


class CountingModel:
    """Probability of class 1 = x / 10; fails on rows where x is negative."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay

    @property
    def classes(self) -> tuple[Any, ...]:
        return (0, 1)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        import time

        self.calls.append(len(frame))
        if self.delay:
            time.sleep(self.delay)
        x = frame["x"].to_numpy()
        if (x < 0).any():
            raise ValueError("negative x")
        p = x / 10.0
        return np.column_stack([1 - p, p])


def bundle(model: CountingModel) -> ModelBundle:
    schema = FeatureSchema(features=(FeatureSpec("x", "numeric"),), target="y", classes=(0, 1))
    return ModelBundle(model=model, schema=schema, kind="test", version=1)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_calls_share_model_calls() -> None:
    model = CountingModel(delay=0.01)
    b = bundle(model)

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(max_wait_ms=2.0, max_size=64)
        await batcher.start()
        results = await asyncio.gather(*(batcher.predict(b, [{"x": i % 10}]) for i in range(200)))
        await batcher.stop()
        return results

    results = run(scenario())
    assert [r[0].probabilities["1"] for r in results] == pytest.approx(
        [(i % 10) / 10 for i in range(200)]
    )
    assert sum(model.calls) == 200
    assert len(model.calls) < 20  # gathered, not one call per request
    assert max(model.calls) <= 64


def test_a_lone_request_is_not_delayed_by_the_wait() -> None:
    model = CountingModel()
    b = bundle(model)

    async def scenario() -> float:
        batcher = MicroBatcher(max_wait_ms=50.0, max_size=64)
        await batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(5):
            await batcher.predict(b, [{"x": 1}])
        elapsed = loop.time() - started
        await batcher.stop()
        return elapsed

    assert run(scenario()) < 0.2  # 5 sequential calls would take 250 ms if each waited 50 ms
    assert model.calls == [1] * 5


def test_one_bad_row_fails_only_its_own_request() -> None:
    model = CountingModel(delay=0.005)
    b = bundle(model)

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(max_wait_ms=5.0, max_size=64)
        await batcher.start()
        rows: list[Sequence[Mapping[str, Any]]] = [[{"x": 1}], [{"x": -1}], [{"x": 3}]] * 10
        out = await asyncio.gather(*(batcher.predict(b, r) for r in rows), return_exceptions=True)
        await batcher.stop()
        return out

    outcomes = run(scenario())
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 10 and all("negative x" in str(f) for f in failures)
    good = [o for o in outcomes if not isinstance(o, BaseException)]
    assert sorted(round(o[0].probabilities["1"], 1) for o in good) == [0.1] * 10 + [0.3] * 10


def test_listeners_see_every_batch() -> None:
    model = CountingModel()
    b = bundle(model)
    seen: list[int] = []

    def listener(_b: ModelBundle, records: Sequence[Mapping[str, Any]], p: Predictions) -> None:
        assert len(records) == len(p)
        seen.append(len(records))

    async def scenario() -> None:
        batcher = MicroBatcher(max_wait_ms=1.0)
        batcher.listeners.append(listener)
        await batcher.start()
        await asyncio.gather(*(batcher.predict(b, [{"x": 2}, {"x": 3}]) for _ in range(10)))
        await batcher.stop()

    run(scenario())
    assert sum(seen) == 20


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=60),
    max_size=st.integers(min_value=1, max_value=24),
)
def test_batches_respect_the_size_cap_whatever_the_request_sizes(
    sizes: list[int], max_size: int
) -> None:
    """Requests of many sizes at once: every row is predicted once and in its own request's
    answer, no model call takes more than ``max_size`` rows unless one request alone is
    larger, and nothing stays counted as pending afterwards (the batcher keeps a running row
    count instead of summing its queue)."""
    model = CountingModel()
    b = bundle(model)

    async def scenario() -> tuple[list[Any], int]:
        batcher = MicroBatcher(max_wait_ms=1.0, max_size=max_size)
        await batcher.start()
        results = await asyncio.gather(
            *(
                batcher.predict(b, [{"x": (i + j) % 10} for j in range(n)])
                for i, n in enumerate(sizes)
            )
        )
        left = batcher._rows_pending()
        await batcher.stop()
        return results, left

    results, left = run(scenario())
    assert left == 0
    assert sum(model.calls) == sum(sizes)
    assert all(c <= max(max_size, *sizes) for c in model.calls)
    if max(sizes) <= max_size:
        assert max(model.calls) <= max_size
    for i, (n, answer) in enumerate(zip(sizes, results, strict=True)):
        assert [r.probabilities["1"] for r in answer] == pytest.approx(
            [((i + j) % 10) / 10 for j in range(n)]
        )
