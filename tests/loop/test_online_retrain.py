"""The loop with an online champion: the challenger continues the champion's Adaptive Random
Forest (a share of new trees, then the drifted rows), is gated and rolled out like any other."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from driftline.config import Settings
from driftline.data import TARGET, generate_loans
from driftline.loop.controller import read_rollout
from driftline.loop.retrain import retrain
from driftline.registry import CHALLENGER, Registry
from driftline.service import create_app
from driftline.store import open_store
from driftline.training import train_model
from tests.conftest import LATENCY_NEVER_DECIDES
from tests.loop.traffic import segment_drift, send, settle


@pytest.fixture
def served(settings: Settings) -> Iterator[TestClient]:
    s = settings.model_copy(
        update={"scheduler": False, "online_learning": False, **LATENCY_NEVER_DECIDES}
    )
    champion = train_model(generate_loans(3_000, seed=1), TARGET, kind="arf", seed=0).bundle
    store = open_store(s.database_url)
    Registry.from_settings(s, store).register(champion, actor="test")
    store.dispose()
    with TestClient(create_app(s)) as client:
        yield client


def test_an_online_champion_is_continued_gated_and_rolled_out(served: TestClient) -> None:
    rt: Any = served.app.state.runtime  # type: ignore[attr-defined]
    send(served, segment_drift(2_500, seed=21), "drift")
    settle(rt)
    outcome = retrain(rt.store, rt.registry, rt.settings, forced=True, actor="test")
    assert outcome.challenger_version == 2 and outcome.gate is not None
    challenger = rt.registry.load(2)
    champion = rt.registry.load(1)
    assert challenger.kind == "arf" and challenger.schema.names == champion.schema.names
    # Continued, not refit: it learned the champion's rows and then the drifted ones.
    assert challenger.model.n_learned > champion.model.n_learned
    assert len(challenger.model.renewed_trees) == round(0.4 * champion.model.n_trees)
    names = {c.name for c in outcome.gate.checks}
    assert {"beats:f1_macro", "beats:cohen_kappa", "schema", "latency"} <= names
    # Seeded end to end: the continued forest beats its parent on the drifted data.
    assert outcome.gate.promote, outcome.gate.reason
    state = read_rollout(rt.store, rt.settings.model_name)
    assert state is not None and state["stage"] == "shadow"
    assert rt.registry.alias(CHALLENGER) == 2
