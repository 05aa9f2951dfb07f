"""Settings: the one reader of ``DRIFTLINE_*`` environment variables.

A :class:`Settings` is built at start-up (``create_app(settings)`` or the CLI entry), never at
import, so tests pass their own (``Settings(database_url="sqlite://")``).

Defaults need no services: a SQLite store and a SQLite-backed MLflow registry, both inside
``DRIFTLINE_HOME``. Point ``DRIFTLINE_DATABASE_URL`` at PostgreSQL and
``DRIFTLINE_MLFLOW_TRACKING_URI`` at an MLflow server to share state between replicas.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.errors import ConfigurationError

__all__ = [
    "MIN_TOKEN_LENGTH",
    "Settings",
    "check_access",
    "is_loopback",
    "normalize_database_url",
    "token_problem",
]

#: Shortest access token accepted (characters); a shorter or empty one refuses to start.
MIN_TOKEN_LENGTH = 16
_TOKEN_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def normalize_database_url(url: str) -> str:
    """Make a database URL usable by SQLAlchemy with psycopg 3.

    >>> normalize_database_url("postgres://u@h/db")
    'postgresql+psycopg://u@h/db'
    >>> normalize_database_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    >>> normalize_database_url("sqlite:///x.db")
    'sqlite:///x.db'
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    """Everything driftline can be configured with; see the README's configuration table."""

    # Errors never echo what was set: a rejected token must not end up in a terminal or a log.
    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_", extra="ignore", hide_input_in_errors=True
    )

    home: Path = Field(default=Path(".driftline"), description="Where local state lives.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL of the store; default a SQLite file in home."
    )
    mlflow_tracking_uri: str = Field(
        default="", description="MLflow tracking URI; default a SQLite-backed store in home."
    )
    mlflow_registry_uri: str = Field(
        default="", description="MLflow registry URI; default the tracking URI."
    )
    model_name: str = Field(default="driftline", description="Registered model name.")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    threads_per_worker: int | None = Field(
        default=None,
        ge=1,
        description="Native (OpenMP/BLAS) threads per worker process; default cores ÷ workers.",
    )
    model_threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "OpenMP threads of the model (request) thread; default 1: micro-batches are small, "
            "and a team of OpenMP threads on cores shared with the event loop stalls requests."
        ),
    )
    worker_healthcheck_timeout_seconds: int = Field(
        default=60,
        ge=1,
        description="With several workers: how long a worker may take to start (imports "
        "included) or to answer the supervisor's health check before it is killed and restarted.",
    )

    queue_size: int = Field(default=20_000, ge=1, description="Prediction-log queue capacity.")
    write_batch_size: int = Field(default=500, ge=1, description="Rows per store insert.")
    flush_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Max delay before a logged prediction is durable."
    )
    queue_full_timeout_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How long /predict waits for queue space before answering 503.",
    )
    # --- bounded store calls and the writer's readiness (README "Durability") ---------------
    store_connect_timeout_seconds: float | None = Field(
        default=None, gt=0, description="Connect timeout; default max(2, 2 × flush interval)."
    )
    store_statement_timeout_seconds: float | None = Field(
        default=None,
        ge=0,
        description="PostgreSQL statement_timeout (0: none); default max(30, 30 × flush).",
    )
    store_tcp_user_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="libpq tcp_user_timeout (keepalives follow); default max(10, 10 × flush).",
    )
    store_busy_timeout_seconds: float | None = Field(
        default=None, ge=0, description="SQLite busy timeout; default max(5, 5 × flush)."
    )
    writer_max_unwritten_age_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/ready answers 503 when a record waits longer than this for the store.",
    )
    max_batch_size: int = Field(default=1_000, ge=1, description="Max rows per /predict/batch.")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1_024,
        description="Largest request body accepted, in bytes (413 beyond it, chunked too).",
    )
    microbatch_max_wait_ms: float = Field(
        default=1.0, ge=0, le=50, description="Max wait to gather concurrent /predict calls."
    )
    microbatch_max_size: int = Field(default=256, ge=1, description="Max rows per model call.")
    compiled_preprocessing: bool = Field(
        default=True,
        description="Replay fitted scikit-learn preprocessing in NumPy (exact, much faster).",
    )
    reload_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often each worker polls the champion alias."
    )
    gc_freeze: bool = Field(
        default=True,
        description="Freeze the loaded heap (gc.freeze) so collections skip the model and "
        "libraries: no full-collection pause on /predict.",
    )
    gc_gen0_threshold: int = Field(
        default=20_000,
        ge=100,
        description="Allocations between young garbage collections in a serving worker "
        "(CPython's default is 700).",
    )
    ws_max_events_per_second: float = Field(
        default=20.0, gt=0, description="Per-client WebSocket prediction-event rate cap."
    )
    ws_queue_size: int = Field(default=256, ge=1, description="Per-client WebSocket buffer.")
    # --- access control (README "Access control") -----------------------------------------------
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the admin endpoints (grants every permission); unset "
        "disables them. At least 16 visible ASCII characters.",
    )
    labels_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that may write labels (POST /labels); unset: anyone may.",
    )
    read_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that may read logged traffic (/predictions, /ws, /reports, "
        "/alerts, /audit, /dashboard/state); unset: anyone may.",
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Serve on a non-loopback address although labels or reads are open.",
    )
    scheduler: bool = Field(
        default=True,
        description="Run the monitor and the loop inside `driftline serve` (one worker leads).",
    )
    monitor_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often the in-process monitor writes a report."
    )
    monitor_window_seconds: float = Field(
        default=3_600.0, gt=0, description="How much recent traffic a report looks at."
    )
    monitor_bucket_seconds: float = Field(
        default=60.0, gt=0, description="Length of a time bucket of live profiles."
    )
    drift_statistics: str = Field(
        default="",
        description=(
            "Extra statistics reported per feature in drift reports, comma-separated, from "
            "psi, jensen_shannon, ks, chi_square, wasserstein, total_variation (they never "
            "change the verdict)."
        ),
    )
    monitor_sample_rows: int = Field(
        default=2_000,
        ge=0,
        le=50_000,
        description="Rows of the uniform sample each time bucket keeps (features and calibrated "
        "confidence), also the window sample the doubly robust accuracy estimate is fitted on "
        "(0: keep none; reports then use CBPE).",
    )
    monitor_estimator: Literal["auto", "cbpe"] = Field(
        default="auto",
        description="Label-free accuracy in reports: auto (doubly robust when the reference and "
        "window samples exist, else CBPE) or cbpe.",
    )
    monitor_flush_seconds: float = Field(
        default=10.0, gt=0, description="How often a worker writes its open buckets."
    )
    concept_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often new labels are fed to concept-drift detection."
    )
    retention_days: float = Field(
        default=30.0, gt=0, description="Buckets older than this are deleted."
    )
    alerts_enabled: bool = Field(
        default=True, description="Evaluate the built-in alert rules inside `driftline serve`."
    )
    alerts_config: Path | None = Field(
        default=None, description="YAML/JSON file of notifiers and routes (none: record only)."
    )
    alerts_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often the built-in alert rules are evaluated."
    )
    # --- the closed loop: retrain, gate, shadow, canary, promote or roll back ---------------
    loop_enabled: bool = Field(
        default=True, description="Run the closed loop (retrain on drift, roll out) in serve."
    )
    loop_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the loop checks triggers and rollout stages."
    )
    retrain_min_labels: int = Field(
        default=500, ge=1, description="Labelled production rows needed since the drift began."
    )
    retrain_cooldown_seconds: float = Field(
        default=12 * 3600.0, ge=0, description="Least time between two automatic retrains."
    )
    retrain_retry_growth: float = Field(
        default=2.0,
        ge=0,
        description="After a rejected challenger, retry within the cooldown once the labels "
        "since the drift are this many times those it was trained on (0: never).",
    )
    retrain_retry_seconds: float = Field(
        default=3600.0, ge=0, description="Least time between a rejected retrain and its retry."
    )
    retrain_accuracy_drop: float = Field(
        default=0.05, ge=0, le=1, description="Estimated-accuracy drop that triggers a retrain."
    )
    retrain_base_rows: int = Field(
        default=10_000, ge=0, description="Most base training rows added (concept-balanced)."
    )
    retrain_smote: bool = Field(
        default=False, description="SMOTE-oversample minority classes (imbalanced-learn)."
    )
    gate_min_gain: float = Field(
        default=0.0, ge=0, le=1, description="Least F1 and kappa gain of the challenger."
    )
    gate_forgetting_tolerance: float = Field(
        default=0.03, ge=0, le=1, description="Most F1/kappa may fall on the base holdout."
    )
    gate_max_latency_ms: float = Field(
        default=50.0, gt=0, description="Latency budget of the challenger (ms per row)."
    )
    gate_max_latency_ratio: float = Field(
        default=2.0, ge=1, description="Challenger latency at most this multiple of the champion's."
    )
    shadow_min_samples: int = Field(
        default=300, ge=1, description="Requests the challenger must shadow before canary."
    )
    canary_share: float = Field(
        default=0.2, gt=0, lt=1, description="Share of traffic the canary answers."
    )
    canary_min_samples: int = Field(
        default=300, ge=1, description="Requests the canary must answer before promotion."
    )
    stage_max_seconds: float = Field(
        default=3_600.0, gt=0, description="Time budget of the shadow and canary stages."
    )
    watch_seconds: float = Field(
        default=600.0, gt=0, description="How long a new champion is watched after promotion."
    )
    watch_min_samples: int = Field(
        default=300, ge=1, description="Requests the new champion must answer while watched."
    )
    slo_max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="SLO guard: highest acceptable error rate."
    )
    slo_max_p95_latency_ms: float = Field(
        default=250.0, gt=0, description="SLO guard: p95 latency limit (ms)."
    )
    slo_max_p95_latency_ratio: float = Field(
        default=3.0, ge=1, description="SLO guard: p95 latency at most this multiple of baseline."
    )
    slo_accuracy_tolerance: float = Field(
        default=0.02, ge=0, le=1, description="SLO guard: accuracy may fall this much."
    )
    # --- online learning (online champions, e.g. `--model arf`) ---------------------------------
    online_learning: bool = Field(
        default=True, description="An online champion learns each label as it arrives."
    )
    online_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the online learner looks for new labels."
    )
    online_checkpoint_labels: int = Field(
        default=1_000, ge=1, description="Learned labels after which a checkpoint is registered."
    )
    online_checkpoint_seconds: float = Field(
        default=900.0, gt=0, description="Longest time a learned label waits for a checkpoint."
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis for stream ingestion."
    )
    stream_input: str = Field(default="driftline:features", description="Input stream key.")
    stream_output: str = Field(default="driftline:predictions", description="Output stream key.")
    stream_group: str = Field(default="driftline", description="Consumer group name.")
    stream_batch_size: int = Field(default=100, ge=1, le=10_000, description="Events per read.")
    stream_claim_idle_ms: int = Field(
        default=30_000, ge=100, description="Claim a dead consumer's entries after this idle."
    )
    stream_maxlen: int = Field(
        default=100_000, ge=1, description="Approximate cap of the output stream's length."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or one JSON object per line."
    )
    log_level: str = "INFO"
    access_log: bool = Field(
        default=False, description="Log one line per HTTP request (with its request id)."
    )
    tracing: Literal["none", "console", "otlp"] = Field(
        default="none",
        description="Where OpenTelemetry spans go: nowhere, stdout, or an OTLP/HTTP endpoint.",
    )
    feast_repo: Path | None = Field(
        default=None,
        description="A Feast feature repository: requests may then send entity keys and the "
        "model's features are fetched from its online store.",
    )

    @field_validator("database_url", "mlflow_tracking_uri", "mlflow_registry_uri")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("admin_token", "labels_token", "read_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            problem = token_problem(value.get_secret_value())
            if problem is not None:
                raise ValueError(f"DRIFTLINE_{str(info.field_name).upper()} {problem}")
        return value

    @field_validator("drift_statistics")
    @classmethod
    def _statistics(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        if not names:
            return ""  # the default: no need to load the statistical core (SciPy) to say so
        # Lazy: drift.decision loads SciPy, and every CLI command (`--help` too) builds Settings.
        from driftline.drift.decision import REPORTABLE_STATISTICS  # noqa: PLC0415 — see above

        unknown = [n for n in names if n not in REPORTABLE_STATISTICS]
        if unknown:
            raise ValueError(
                f"drift_statistics entries must be among {', '.join(REPORTABLE_STATISTICS)}; "
                f"got {unknown[0]!r}"
            )
        return ",".join(names)

    @property
    def drift_report(self) -> tuple[str, ...]:
        """:attr:`drift_statistics` as the tuple :class:`~driftline.drift.DriftPolicy` takes."""
        return tuple(n for n in self.drift_statistics.split(",") if n)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'driftline.db'}"
        self.database_url = normalize_database_url(self.database_url)
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if not self.mlflow_registry_uri:
            self.mlflow_registry_uri = self.mlflow_tracking_uri
        return self

    @model_validator(mode="after")
    def _check_writer_bounds(self) -> Settings:
        if self.writer_max_unwritten_age_seconds <= self.flush_interval_seconds:
            raise ValueError(
                "writer_max_unwritten_age_seconds must exceed flush_interval_seconds "
                f"({self.flush_interval_seconds}); got {self.writer_max_unwritten_age_seconds}"
            )
        return self

    @property
    def open_permissions(self) -> list[str]:
        """The permissions anyone has because their token is unset (admin is never open: without
        its token the admin endpoints are disabled)."""
        out = []
        if self.labels_token is None:
            out.append("writing labels (DRIFTLINE_LABELS_TOKEN)")
        if self.read_token is None:
            out.append("reading predictions and events (DRIFTLINE_READ_TOKEN)")
        return out

    @property
    def spill_dir(self) -> Path:
        """Append-only files holding records the store could not take yet."""
        return self.home / "spill"

    @property
    def artifact_dir(self) -> Path:
        """Where a local MLflow store keeps its artifacts."""
        return self.home / "mlartifacts"

    @property
    def cache_dir(self) -> Path:
        """Downloaded model versions, one folder each."""
        return self.home / "cache"

    def ensure_home(self) -> None:
        """Create the home folders (idempotent)."""
        for path in (self.home, self.spill_dir, self.artifact_dir, self.cache_dir):
            path.mkdir(parents=True, exist_ok=True)


def token_problem(token: str) -> str | None:
    """What makes ``token`` unfit as a bearer token, or ``None`` when it is fine.

    >>> token_problem("").split(":")[0]
    'is set but empty'
    >>> token_problem("s3cret").split(":")[0]
    'is 6 characters long'
    >>> token_problem("a long enough token").split(":")[0]
    'holds a space, a control or a non-ASCII character'
    >>> token_problem("a-long-enough-token") is None
    True
    """
    if not token:
        return (
            "is set but empty: unset it, or set a random token of at least "
            f"{MIN_TOKEN_LENGTH} characters ({_TOKEN_HINT})"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"is {len(token)} characters long: use at least {MIN_TOKEN_LENGTH} ({_TOKEN_HINT})"
        )
    if not all("!" <= ch <= "~" for ch in token):
        return (
            "holds a space, a control or a non-ASCII character: a bearer token travels in an "
            f"HTTP header, so use visible ASCII only ({_TOKEN_HINT})"
        )
    return None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only listens on this machine: a loopback address, ``localhost``,
    or a name all of whose addresses are loopback (a name that does not resolve counts as
    reachable from outside).

    >>> [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost")]
    [True, True, True, True, True]
    >>> is_loopback("0.0.0.0"), is_loopback("::"), is_loopback("192.168.1.20")
    (False, False, False)
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


def check_access(settings: Settings) -> None:
    """Refuse settings whose access control would be open by accident: a token that is empty,
    shorter than :data:`MIN_TOKEN_LENGTH` or not visible ASCII (also when the settings were
    built without validation, e.g. ``model_copy``), and a non-loopback ``host`` while some
    permission is open, unless ``allow_unauthenticated`` says so.

    Raises
    ------
    ConfigurationError
        Naming the variable and what to do.
    """
    for name in ("admin_token", "labels_token", "read_token"):
        value = getattr(settings, name)
        if value is None:
            continue
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        problem = token_problem(text)
        if problem is not None:
            raise ConfigurationError(f"DRIFTLINE_{name.upper()} {problem}")
    open_permissions = settings.open_permissions
    if open_permissions and not settings.allow_unauthenticated and not is_loopback(settings.host):
        raise ConfigurationError(
            f"refusing to serve on {settings.host}, which is reachable from other machines, "
            f"while anyone may be {' and '.join(open_permissions)}: set those tokens, bind "
            "127.0.0.1, or say it is intended with --allow-unauthenticated "
            "(DRIFTLINE_ALLOW_UNAUTHENTICATED=true)"
        )
