"""Request and response bodies of the HTTP API (apart from the store's tables)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from driftline.limits import (
    MAX_LABEL_LENGTH,
    MAX_REASON_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    MAX_VERSION,
    NAME_ECHO_LENGTH,
    echo,
    label_problem,
    request_id_problem,
    text_problem,
)

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


def _request_id(value: str) -> str:
    problem = request_id_problem(value)
    if problem is not None:
        raise ValueError(f"request_id {problem}")
    return value


def _text(max_length: int) -> AfterValidator:
    def check(value: str) -> str:
        problem = text_problem(value, max_length=max_length)
        if problem is not None:
            raise ValueError(f"text {problem}")
        return value

    return AfterValidator(check)


def _label(value: str | int | bool | float) -> str | int | bool | float:
    problem = label_problem(value)
    if problem is not None:
        raise ValueError(f"label {problem}")
    return value


#: A request id: what no store, header or log line would choke on (driftline.limits).
RequestIdText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_REQUEST_ID_LENGTH,
        json_schema_extra={"pattern": "^[!-~]+$"},
    ),
    AfterValidator(_request_id),
]
RoutingKeyText = Annotated[str, Field(min_length=1, max_length=256), _text(256)]
ReasonText = Annotated[str, Field(max_length=MAX_REASON_LENGTH), _text(MAX_REASON_LENGTH)]
Label = Annotated[str | int | bool | float, AfterValidator(_label)]

RequestId = Field(
    default=None,
    description=f"Your own id for this request (a flow id, an order id): 1 to "
    f"{MAX_REQUEST_ID_LENGTH} visible ASCII characters, no spaces; generated if absent.",
)
RoutingKey = Field(
    default=None,
    description="During a canary, requests with the same key (a user, a flow) always reach "
    "the same model; the request id is used when absent.",
)
Features = Field(
    default=None,
    description="An object keyed by feature name, or a list of values in schema order. With "
    "entities, the features sent here win over the fetched ones.",
    examples=[{"age": 35, "income": 52000, "home_ownership": "RENT"}],
)
Entities = Field(
    default=None,
    description="Entity keys (e.g. {\"customer_id\": 42}): the model's Feast features are "
    "fetched from the online store (DRIFTLINE_FEAST_REPO) and merged with any features sent.",
    examples=[{"customer_id": 42}],
)


class _FeaturesOrEntities(BaseModel):
    """A row given by its features, by entity keys (features fetched from Feast), or both."""

    model_config = ConfigDict(extra="forbid")

    request_id: RequestIdText | None = RequestId
    routing_key: RoutingKeyText | None = RoutingKey
    features: dict[str, Any] | list[Any] | None = Features
    entities: dict[str, Any] | None = Entities

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any) -> Any:
        # Before the fields, so a misspelt key ({"feature": ...}) is answered with what the
        # body needs, not only with "extra inputs are not permitted".
        if isinstance(data, dict) and data.get("features") is None and data.get("entities") is None:
            got = [echo(str(k), NAME_ECHO_LENGTH) for k in list(data)[:5]]
            raise ValueError(
                "send features, entities, or both"
                + (f" (got {', '.join(map(repr, got))})" if got else "")
            )
        return data


class PredictRequest(_FeaturesOrEntities):
    pass


class PredictResponse(BaseModel):
    request_id: str
    prediction: Any = Field(description="The predicted class.")
    probabilities: dict[str, float] = Field(description="Probability of each class.")
    confidence: float = Field(description="Probability of the predicted class.")
    model_version: int
    variant: str = Field(description="Which model answered: champion or canary.")
    latency_ms: float = Field(description="Server time spent on this request.")


class BatchInstance(_FeaturesOrEntities):
    pass


class BatchPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[BatchInstance] = Field(min_length=1)


class BatchPredictResponse(BaseModel):
    predictions: list[PredictResponse]
    model_version: int
    latency_ms: float


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: RequestIdText = Field(description="The id of the prediction it labels.")
    label: Label = Field(
        description=f"The true class of that request: a finite number, a boolean or text of "
        f"at most {MAX_LABEL_LENGTH} characters without control characters."
    )


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
    model: int = Field(description="OpenMP threads of the model thread: 1 unless configured")
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
    writer_oldest_unwritten_seconds: float = Field(
        default=0.0, description="Age of the oldest record not yet in the store (0: drained)."
    )
    reasons: list[str]


class PredictionItem(BaseModel):
    request_id: str
    ts: float
    model_version: int
    variant: str
    source: str
    features: dict[str, Any]
    prediction: Any = Field(
        description="The predicted class, as /predict answers it (text for a version this "
        "worker has not loaded)."
    )
    probabilities: dict[str, float]
    confidence: float
    latency_ms: float
    label: Any = Field(description="The true class once a label arrived, else null.")
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

    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: ReasonText = "via API"


class AliasMoveResponse(BaseModel):
    alias: str
    from_version: int | None
    to_version: int | None


class LatencySummary(BaseModel):
    p50: float | None = Field(description="Median latency (ms), from the bucket histograms.")
    p95: float | None
    p99: float | None


class PredictedClasses(BaseModel):
    total: int
    counts: dict[str, int]
    shares: dict[str, float]


class TrafficSummary(BaseModel):
    requests: int
    errors: int
    rejected: int
    error_rate: float | None
    requests_per_second: float | None
    latency_ms: LatencySummary
    predictions: PredictedClasses


class DriftSummary(BaseModel):
    status: str | None = Field(description="Status of the latest monitor report.")
    report_id: int | None
    report_ts: float | None = None
    data_drift: str | None = None
    drifted_features: list[str] = Field(default_factory=list)
    prediction_drift: str | None = None
    quality: str | None = None
    concept_drift: str | None = None


class AccuracySummary(BaseModel):
    reference: float | None = None
    estimated: float | None = None
    estimated_lower: float | None = None
    estimated_upper: float | None = None
    realized: float | None = None
    realized_n: int | None = None


class MetricsSummary(BaseModel):
    ts: float
    window_seconds: float
    model_name: str
    model_version: int | None
    traffic: TrafficSummary
    drift: DriftSummary
    accuracy: AccuracySummary


# --- alerts and audit ---------------------------------------------------------------------------


class AlertOut(BaseModel):
    id: int
    name: str
    severity: str
    status: str = Field(description="firing or resolved.")
    labels: dict[str, str]
    summary: str
    description: str
    value: float | None
    starts_at: float
    ends_at: float | None
    notified: list[str] = Field(description="The notifiers that were told.")


class AlertsPage(BaseModel):
    items: list[AlertOut]
    limit: int
    offset: int


class AuditEntryOut(BaseModel):
    id: int
    ts: float
    kind: str
    actor: str
    model_version: int | None
    message: str
    details: dict[str, Any] = Field(description="The numbers and reasons of the decision.")
    success: bool


class AuditPage(BaseModel):
    items: list[AuditEntryOut]


# --- monitor reports ----------------------------------------------------------------------------


class ReportSummary(BaseModel):
    """The headline figures of one monitor report."""

    id: int
    ts: float
    model_version: int
    status: str = Field(description="ok, warning, critical or insufficient_data.")
    window_start: float
    window_end: float
    rows: int | None
    data_drift: str | None = Field(description="Severity: none, warning or critical.")
    drifted_features: list[str]
    prediction_drift: str | None
    quality: str | None
    estimated_accuracy: float | None
    realized_accuracy: float | None
    reference_accuracy: float | None
    concept_drift: str | None = Field(description="State of the concept-drift detector.")


class ReportsPage(BaseModel):
    items: list[ReportSummary]
    limit: int
    offset: int


class ReportWindow(BaseModel):
    start: float
    end: float
    seconds: float
    buckets: int


class ReportOut(BaseModel):
    """A whole monitor report (more sections may be added: they pass through)."""

    model_config = ConfigDict(extra="allow")

    id: int
    ts: float
    model_name: str
    model_version: int | None
    status: str = Field(description="ok, warning, critical or insufficient_data.")
    window: ReportWindow
    rows: int
    data_drift: dict[str, Any] = Field(description="Per-feature tests, effect sizes, decision.")
    prediction_drift: dict[str, Any] | None
    quality: dict[str, Any]
    performance: dict[str, Any] = Field(description="Estimated and realized metrics.")
    concept_drift: dict[str, Any]
    distributions: dict[str, Any] = Field(description="Reference and current bin shares.")


# --- rollout ------------------------------------------------------------------------------------


class RolloutStageOut(BaseModel):
    stage: str
    ts: float
    reasons: list[str]


class RolloutState(BaseModel):
    """A rollout as stored (every worker reads the same)."""

    model_config = ConfigDict(extra="allow")

    id: str
    stage: str = Field(description="shadow, canary, watch, done, aborted or rolled_back.")
    champion: int | None
    challenger: int
    canary_share: float
    started_ts: float
    stage_started_ts: float
    baseline: dict[str, Any] | None
    last_verdict: dict[str, Any] | None = Field(description="The last decision with its numbers.")
    history: list[RolloutStageOut]


class RolloutServing(BaseModel):
    champion: int | None
    challenger: int | None
    canary_share: float


class RolloutOut(RolloutState):
    """The current (or last) rollout, and what this worker serves."""

    started_at: float | None
    reason: str
    serving: RolloutServing


# --- dashboard ----------------------------------------------------------------------------------


class DashboardState(BaseModel):
    """What the dashboard page shows at start (chart series as plain JSON)."""

    model_config = ConfigDict(extra="allow")

    ts: float
    model_name: str
    worker: str
    models: dict[str, Any]
    rollout: dict[str, Any] | None
    traffic: dict[str, Any]
    classes: dict[str, Any]
    heatmap: dict[str, Any]
    accuracy: dict[str, Any]
    latest_report: dict[str, Any] | None
    alerts: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    settings: dict[str, float]


# --- the served model's schema (GET /schema) ------------------------------------------------------


class FeatureDistribution(BaseModel):
    missing: float = Field(description="Share of reference rows without a value.")
    quantiles: list[float | None] | None = Field(
        default=None, description="Numeric features: reference quantiles."
    )
    values: list[Any] | None = Field(
        default=None, description="Categorical and boolean features: the most frequent values."
    )
    frequencies: list[float] | None = Field(default=None, description="Shares of ``values``.")


class FeatureOut(BaseModel):
    name: str
    kind: str
    nullable: bool
    integer: bool
    minimum: float | None
    maximum: float | None
    categories: list[str]
    distribution: FeatureDistribution | None


class SchemaResponse(BaseModel):
    model_name: str
    version: int | None
    features: list[FeatureOut]
    target: str | None
    classes: list[Any]
    task: str
    reference_rows: int
