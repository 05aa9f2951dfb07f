"""Which model answers a request: the champion, or during a canary the challenger for its
sticky share of routing keys; and which challenger gets the shadow copies.

Every worker follows the rollout state in the store (:meth:`CanaryRouting.refresh`, on each
alias poll) and loads the challenger bundle the stage needs, so all workers and replicas route
alike.
"""

from __future__ import annotations

import asyncio
from typing import Any

from driftline.config import Settings
from driftline.loop.controller import STAGE_CODE, read_rollout
from driftline.loop.rollout import canary_routes
from driftline.models.bundle import ModelBundle
from driftline.registry import Registry
from driftline.service.metrics import ServiceMetrics
from driftline.store import Store

__all__ = ["CanaryRouting", "set_preprocessing", "variant_of"]


def set_preprocessing(bundle: ModelBundle, settings: Settings) -> ModelBundle:
    """``bundle``, its model told to leave its compiled preprocessing path unless the settings
    allow it (``DRIFTLINE_COMPILED_PREPROCESSING``)."""
    use_compiled = getattr(bundle.model, "use_compiled", None)
    if use_compiled is not None and not settings.compiled_preprocessing:
        use_compiled(False)
    return bundle


def variant_of(bundle: ModelBundle, champion: ModelBundle | None) -> str:
    """Which role a bundle plays for the request it answered."""
    if champion is None or bundle is champion or bundle.version == champion.version:
        return "champion"
    return "canary"


class CanaryRouting:
    """The rollout one worker follows and the challenger bundle it holds for it."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        #: The rollout every worker follows (read from the store each poll) and the
        #: challenger bundle it needs (shadow or canary); ``None`` outside a rollout.
        self.rollout: dict[str, Any] | None = None
        self.challenger: ModelBundle | None = None

    async def refresh(self, store: Store, registry: Registry) -> None:
        """Follow the rollout state in the store: load or drop the challenger bundle."""
        state = await asyncio.to_thread(read_rollout, store, self.settings.model_name)
        stage = state.get("stage") if state else None
        if state is None or stage not in ("shadow", "canary"):
            self.rollout = state
            self.challenger = None
        else:
            version = int(state["challenger"])
            if self.challenger is None or self.challenger.version != version:
                bundle = await asyncio.to_thread(registry.load, version)
                self.challenger = set_preprocessing(bundle, self.settings)
            self.rollout = state
        self.metrics.rollout_stage.set(STAGE_CODE.get(str(stage), 0))
        self.metrics.canary_share.set(self.canary_share)

    @property
    def canary_share(self) -> float:
        state = self.rollout
        if state is None or state.get("stage") != "canary" or self.challenger is None:
            return 0.0
        return float(state.get("canary_share") or 0.0)

    def route(self, champion: ModelBundle, key: str | None) -> ModelBundle:
        """The bundle that answers a request: the canary for its sticky share, else the
        champion. Requests without a key during a canary go to the champion."""
        challenger = self.challenger
        share = self.canary_share
        if challenger is None or share <= 0 or key is None:
            return champion
        return challenger if canary_routes(key, share) else champion

    def shadowing(self) -> ModelBundle | None:
        """The challenger that gets copies of answered traffic (during a shadow stage)."""
        state = self.rollout
        if state is not None and state.get("stage") == "shadow":
            return self.challenger
        return None
