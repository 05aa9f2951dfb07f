"""Request and response bodies of the HTTP API (apart from the store's tables)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchInstance",
    "BatchPredictRequest",
    "BatchPredictResponse",
    "HealthResponse",
    "LabelIn",
    "LabelsRequest",
    "LabelsResponse",
    "ModelsResponse",
    "NativeThreadPool",
    "NativeThreads",
    "PredictRequest",
    "PredictResponse",
    "PredictionItem",
    "PredictionsPage",
    "ReadyResponse",
    "ReloadResponse",
]

RequestId = Field(
    default=None,
    min_length=1,
    max_length=128,
    description="Your own id for this request (a flow id, an order id); generated if absent.",
)
RoutingKey = Field(
    default=None,
    min_length=1,
    max_length=256,
    description="During a canary, requests with the same key (a user, a flow) always reach "
    "the same model; the request id is used when absent.",
)
Features = Field(
    description="An object keyed by feature name, or a list of values in schema order.",
    examples=[{"age": 35, "income": 52000, "home_ownership": "RENT"}],
)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = RequestId
    routing_key: str | None = RoutingKey
    features: dict[str, Any] | list[Any] = Features


class PredictResponse(BaseModel):
    request_id: str
    prediction: Any = Field(description="The predicted class.")
    probabilities: dict[str, float] = Field(description="Probability of each class.")
    confidence: float = Field(description="Probability of the predicted class.")
    model_version: int
    variant: str = Field(description="Which model answered: champion or canary.")
    latency_ms: float = Field(description="Server time spent on this request.")


class BatchInstance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = RequestId
    routing_key: str | None = RoutingKey
    features: dict[str, Any] | list[Any] = Features


class BatchPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[BatchInstance] = Field(min_length=1)


class BatchPredictResponse(BaseModel):
    predictions: list[PredictResponse]
    model_version: int
    latency_ms: float


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    label: str | int | bool | float = Field(description="The true class of that request.")


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[LabelIn] = Field(min_length=1)


class LabelsResponse(BaseModel):
    accepted: int
    durable: str = Field(description="'store', or 'spill' while the store is unreachable.")


class NativeThreadPool(BaseModel):
    api: str = Field(description="openmp, openblas, mkl, blis, ...")
    library: str = Field(description="the shared library, e.g. libgomp")
    num_threads: int


class NativeThreads(BaseModel):
    per_worker: int = Field(description="the worker's budget: cores ÷ workers unless configured")
    model_thread: list[NativeThreadPool] = Field(
        description="the pools as threadpoolctl reported them on the model thread at start-up"
    )


class HealthResponse(BaseModel):
    status: str
    worker: str
    uptime_seconds: float
    model_version: int | None
    store_up: bool
    queue_depth: int
    native_threads: NativeThreads


class ReadyResponse(BaseModel):
    ready: bool
    model_loaded: bool
    store_reachable: bool
    model_version: int | None
    reasons: list[str]


class PredictionItem(BaseModel):
    request_id: str
    ts: float
    model_version: int
    variant: str
    source: str
    features: dict[str, Any]
    prediction: str
    probabilities: dict[str, float]
    confidence: float
    latency_ms: float
    label: str | None
    label_ts: float | None


class PredictionsPage(BaseModel):
    items: list[PredictionItem]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class ModelVersionOut(BaseModel):
    version: int
    kind: str
    created: float
    aliases: list[str]
    metrics: dict[str, float]


class AliasMoveOut(BaseModel):
    ts: float
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str


class ModelsResponse(BaseModel):
    model_name: str
    serving_version: int | None
    aliases: dict[str, int]
    versions: list[ModelVersionOut]
    history: list[AliasMoveOut]


class ReloadResponse(BaseModel):
    reloaded: bool
    model_version: int | None


class AliasMoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1)
    reason: str = Field(default="via API", max_length=500)


class AliasMoveResponse(BaseModel):
    alias: str
    from_version: int | None
    to_version: int | None
