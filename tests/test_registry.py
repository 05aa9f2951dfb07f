from __future__ import annotations

import numpy as np
import pytest

from driftline.data import generate_loans
from driftline.errors import ModelNotFoundError, RegistryError
from driftline.models import ModelBundle
from driftline.registry import CHALLENGER, CHAMPION, Registry
from driftline.store import queries


def test_first_version_becomes_champion_and_later_ones_wait(
    registry: Registry, trained_bundle: ModelBundle
) -> None:
    assert registry.aliases() == {}
    v1 = registry.register(trained_bundle, actor="test", reason="first")
    v2 = registry.register(trained_bundle, actor="test", reason="second")
    assert (v1, v2) == (1, 2)
    assert registry.aliases() == {CHAMPION: 1}
    versions = registry.versions()
    assert [v.version for v in versions] == [2, 1]
    assert versions[1].aliases == (CHAMPION,)
    assert versions[0].metrics["accuracy"] == pytest.approx(trained_bundle.metrics["accuracy"])
    assert versions[0].kind == "logreg"


def test_promote_rollback_and_history(registry: Registry, trained_bundle: ModelBundle) -> None:
    for _ in range(3):
        registry.register(trained_bundle)
    registry.set_alias(CHALLENGER, 3, actor="test", reason="candidate")
    assert registry.promote(3, actor="test", reason="better") == 1
    assert registry.aliases() == {CHAMPION: 3}  # challenger cleared on promotion
    assert registry.rollback(actor="test", reason="slo breach") == (3, 1)
    assert registry.alias(CHAMPION) == 1
    registry.promote(2)
    assert registry.rollback(to=3) == (2, 3)
    moves = registry.history(alias=CHAMPION)
    assert [(m.from_version, m.to_version) for m in moves] == [
        (2, 3),
        (1, 2),
        (3, 1),
        (1, 3),
        (None, 1),
    ]
    assert moves[2].reason == "rollback: slo breach" and moves[2].actor == "test"
    with registry.store.sessions() as session:
        kinds = [e.kind for e in queries.list_audit(session=session)]
    assert kinds.count("rollback") == 2 and "model_registered" in kinds


def test_rollback_without_history_is_a_clear_error(
    registry: Registry, trained_bundle: ModelBundle
) -> None:
    registry.register(trained_bundle)
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback()
    with pytest.raises(RegistryError, match="already the champion"):
        registry.rollback(to=1)


def test_unknown_versions_and_aliases(registry: Registry, trained_bundle: ModelBundle) -> None:
    registry.register(trained_bundle)
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        registry.promote(7)
    with pytest.raises(ModelNotFoundError):
        registry.load(9)
    with pytest.raises(RegistryError, match="alias must be one of"):
        registry.set_alias("production", 1, actor="t", reason="r")


def test_load_gives_the_same_model_and_caches(
    registry: Registry, trained_bundle: ModelBundle
) -> None:
    registry.register(trained_bundle)
    loaded = registry.load(1)
    rows = generate_loans(40, seed=2)
    assert loaded.version == 1
    assert np.allclose(loaded.predict_frame(rows).proba, trained_bundle.predict_frame(rows).proba)
    assert (registry.cache_dir / registry.model_name / "1" / ".complete").exists()
    assert registry.load(1).schema == trained_bundle.schema
