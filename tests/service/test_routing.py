"""Canary routing: who answers a request in each rollout stage (service/routing.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from driftline.config import Settings
from driftline.loop.rollout import canary_routes
from driftline.models.bundle import ModelBundle
from driftline.service.metrics import ServiceMetrics
from driftline.service.routing import CanaryRouting, variant_of


def _bundle(version: int) -> ModelBundle:
    # Routing reads a bundle's version and identity only.
    return cast(ModelBundle, SimpleNamespace(version=version))


def _routing(rollout: dict[str, Any] | None, challenger: ModelBundle | None) -> CanaryRouting:
    routing = CanaryRouting(Settings(), ServiceMetrics())
    routing.rollout, routing.challenger = rollout, challenger
    return routing


KEYS = [f"customer-{i}" for i in range(400)]


def test_outside_a_rollout_the_champion_answers_everything() -> None:
    champion = _bundle(1)
    for rollout in (None, {"stage": "watching", "challenger": 2}):
        routing = _routing(rollout, None)
        assert routing.canary_share == 0.0 and routing.shadowing() is None
        assert {routing.route(champion, key).version for key in [*KEYS, None]} == {1}


def test_a_canary_answers_its_sticky_share_of_keys() -> None:
    champion, challenger = _bundle(1), _bundle(2)
    routing = _routing({"stage": "canary", "challenger": 2, "canary_share": 0.25}, challenger)
    assert routing.canary_share == 0.25 and routing.shadowing() is None
    routed = [routing.route(champion, key) for key in KEYS]
    assert [b is challenger for b in routed] == [canary_routes(k, 0.25) for k in KEYS]
    assert 0 < sum(b is challenger for b in routed) < len(KEYS)
    assert routing.route(champion, None) is champion  # no key: the champion


def test_a_canary_stage_without_its_bundle_routes_to_the_champion() -> None:
    champion = _bundle(1)
    routing = _routing({"stage": "canary", "challenger": 2, "canary_share": 1.0}, None)
    assert routing.canary_share == 0.0
    assert all(routing.route(champion, key) is champion for key in KEYS)


def test_a_shadow_stage_copies_to_the_challenger_and_answers_with_the_champion() -> None:
    champion, challenger = _bundle(1), _bundle(2)
    routing = _routing({"stage": "shadow", "challenger": 2, "canary_share": 0.5}, challenger)
    assert routing.shadowing() is challenger and routing.canary_share == 0.0
    assert all(routing.route(champion, key) is champion for key in KEYS)


def test_variant_of_names_the_role_a_bundle_played() -> None:
    champion = _bundle(3)
    assert variant_of(champion, champion) == "champion"
    assert variant_of(_bundle(3), champion) == "champion"  # the same version reloaded
    assert variant_of(_bundle(4), champion) == "canary"
    assert variant_of(_bundle(4), None) == "champion"  # nothing served yet
