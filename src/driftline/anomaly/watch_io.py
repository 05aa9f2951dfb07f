"""The host watcher's edges: Prometheus gauges, a Redis stream and the model registry.

:class:`HostMetrics` holds the ``driftline_host_*`` families in a registry of its own (so the
watcher's /metrics never mixes with the service's) and serves them over HTTP on a loopback
address by default. :class:`StreamPublisher` appends each observation to a Redis stream in the
event format of :mod:`driftline.streams` — a ``features`` field holding the metrics as JSON —
so ``driftline consume`` can read the same stream with the host-anomaly model.
:func:`registering` registers every model the watcher trains, makes it the champion and
audits retrains.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Mapping
from typing import Any, Final

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import start_http_server
from redis.exceptions import RedisError

from driftline.anomaly.dataset import METRIC_COLUMNS, TIMESTAMP_COLUMN
from driftline.anomaly.detector_training import PREDICTED_COLUMN, SCORE_COLUMN
from driftline.anomaly.watcher import Register, Trained, WatchEvent
from driftline.errors import ConfigurationError
from driftline.registry import CHAMPION, Registry
from driftline.store import queries
from driftline.streams.source import StreamError, encode_event

__all__ = ["HOST_GAUGES", "HostMetrics", "MetricsServer", "StreamPublisher", "registering"]

#: Observation column → (gauge name, help, factor to base units). Percentages are exported as
#: ratios in [0, 1], as Prometheus's naming guide asks.
HOST_GAUGES: Final[dict[str, tuple[str, str, float]]] = {
    "cpu_percent": (
        "driftline_host_cpu_usage_ratio",
        "Share of CPU time in use since the previous sample, all CPUs (0-1).",
        0.01,
    ),
    "memory_percent": (
        "driftline_host_memory_usage_ratio",
        "Share of memory in use (0-1).",
        0.01,
    ),
    "disk_percent": (
        "driftline_host_disk_usage_ratio",
        "Share of the watched file system in use (0-1).",
        0.01,
    ),
    "net_rx_bytes_per_s": (
        "driftline_host_network_receive_bytes_per_second",
        "Bytes received per second since the previous sample, all interfaces.",
        1.0,
    ),
    "net_tx_bytes_per_s": (
        "driftline_host_network_transmit_bytes_per_second",
        "Bytes sent per second since the previous sample, all interfaces.",
        1.0,
    ),
}


class MetricsServer:
    """A running /metrics HTTP server; :meth:`close` stops it."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        self.host = host
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class HostMetrics:
    """The watcher's Prometheus families, updated from each :class:`WatchEvent`.

    Example
    -------
    >>> from driftline.anomaly.watcher import WatchEvent
    >>> metrics = HostMetrics()
    >>> metrics.update(WatchEvent(0, {"cpu_percent": 42.0, "memory_percent": 50.0},
    ...                           "scoring", score=0.71, flagged=True, threshold=0.6,
    ...                           model_version=3))
    >>> text = metrics.render().decode()
    >>> "driftline_host_cpu_usage_ratio 0.42" in text, "driftline_host_anomaly_flag 1.0" in text
    (True, True)
    >>> "driftline_host_anomaly_score 0.71" in text, "driftline_host_anomalies_total 1.0" in text
    (True, True)
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.gauges = {
            column: (Gauge(name, text, registry=r), factor)
            for column, (name, text, factor) in HOST_GAUGES.items()
        }
        self.score = Gauge(
            "driftline_host_anomaly_score",
            "Anomaly score of the last observation (higher is more anomalous; NaN while the "
            "baseline is learnt).",
            registry=r,
        )
        self.flag = Gauge(
            "driftline_host_anomaly_flag",
            "1 when the last observation was flagged as an anomaly, else 0 (NaN while learning).",
            registry=r,
        )
        self.threshold = Gauge(
            "driftline_host_anomaly_threshold",
            "Score above which an observation is flagged.",
            registry=r,
        )
        self.learning = Gauge(
            "driftline_host_learning_baseline",
            "1 while the watcher collects its baseline, else 0.",
            registry=r,
        )
        self.model_version = Gauge(
            "driftline_host_model_version",
            "Registered version of the detector scoring observations (0 when unregistered).",
            registry=r,
        )
        self.observations = Counter(
            "driftline_host_observations", "Observations sampled.", registry=r
        )
        self.anomalies = Counter(
            "driftline_host_anomalies", "Observations flagged as anomalies.", registry=r
        )
        self.drift_checks = Counter(
            "driftline_host_drift_checks",
            "Drift checks of the recent window against the model's training rows.",
            ["severity"],
            registry=r,
        )
        self.trained = Counter(
            "driftline_host_models_trained",
            "Detectors trained by the watcher.",
            ["reason"],
            registry=r,
        )
        self.stream_errors = Counter(
            "driftline_host_stream_errors",
            "Observations that could not be published to the stream.",
            registry=r,
        )
        for severity in ("none", "warning", "critical", "insufficient_data"):
            self.drift_checks.labels(severity)
        for reason in ("baseline", "drift"):
            self.trained.labels(reason)
        for gauge in (self.score, self.flag, self.threshold):
            gauge.set(math.nan)

    def update(self, event: WatchEvent) -> None:
        """Set the gauges from one event and count it."""
        observation = event.observation
        for column, (gauge, factor) in self.gauges.items():
            value = observation.get(column)
            if isinstance(value, int | float) and not isinstance(value, bool):
                gauge.set(float(value) * factor)
        self.observations.inc()
        self.learning.set(1 if event.phase == "baseline" else 0)
        if event.score is not None:
            self.score.set(event.score)
            self.flag.set(1 if event.flagged else 0)
            if event.flagged:
                self.anomalies.inc()
        if event.threshold is not None:
            self.threshold.set(event.threshold)
        if event.model_version is not None:
            self.model_version.set(event.model_version)
        if event.drift is not None:
            self.drift_checks.labels(event.drift.severity).inc()
        if event.trained is not None:
            self.trained.labels("drift" if event.trained.drift is not None else "baseline").inc()
            self.learning.set(0)
            if event.trained.version is not None:
                self.model_version.set(event.trained.version)
            threshold = getattr(event.trained.bundle.model, "threshold_", None)
            if isinstance(threshold, float):
                self.threshold.set(threshold)

    def render(self) -> bytes:
        """The Prometheus text format of every family."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve /metrics on ``host:port`` (port 0 picks a free one) in a daemon thread."""
        if not 0 <= port <= 65_535:
            raise ConfigurationError(f"port must be in [0, 65535], got {port}")
        return MetricsServer(host, port, self.registry)


class StreamPublisher:
    """Appends one entry per observation to a Redis stream (``XADD … MAXLEN ~``).

    Fields: ``features`` (the metrics as JSON, the input format of ``driftline consume``),
    ``timestamp``, ``host``, ``phase``, and once a model scores: ``anomaly_score``,
    ``predicted_anomaly`` (0/1) and ``model_version``.

    Parameters
    ----------
    url
        Redis URL (``redis://host:port/db``).
    stream
        Stream key.
    maxlen
        Approximate cap of the stream's length.
    host
        Name recorded in each entry (this machine's by default).
    timeout
        Seconds to wait for Redis before an operation fails.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        maxlen: int = 100_000,
        host: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        if not stream:
            raise ConfigurationError("stream must be a non-empty key")
        if maxlen < 1:
            raise ConfigurationError(f"maxlen must be at least 1, got {maxlen}")
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.host = host or socket.gethostname()
        try:
            self._client = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=timeout, socket_timeout=timeout
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {url!r}: {exc}") from exc
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StreamPublisher(stream={self.stream!r}, maxlen={self.maxlen})"

    @property
    def _where(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    def check(self) -> None:
        """Fail now, with a clear message, when Redis does not answer."""
        try:
            self._client.ping()
        except RedisError as exc:
            raise StreamError(f"Redis unreachable at {self._where}: {exc}") from exc

    @staticmethod
    def fields(event: WatchEvent, host: str) -> dict[str, str]:
        """The stream entry of one event.

        >>> from driftline.anomaly.watcher import WatchEvent
        >>> event = WatchEvent(7, {"timestamp": "2026-01-01T00:00:00+00:00", "cpu_percent": 5.0},
        ...                    "scoring", score=0.4, flagged=False, model_version=2)
        >>> StreamPublisher.fields(event, "box")  # doctest: +NORMALIZE_WHITESPACE
        {'features': '{"cpu_percent": 5.0}', 'timestamp': '2026-01-01T00:00:00+00:00',
         'host': 'box', 'phase': 'scoring', 'anomaly_score': '0.4', 'predicted_anomaly': '0',
         'model_version': '2'}
        """
        observation: Mapping[str, Any] = event.observation
        metrics = {c: observation[c] for c in METRIC_COLUMNS if c in observation}
        fields = encode_event(metrics)
        fields[TIMESTAMP_COLUMN] = str(observation.get(TIMESTAMP_COLUMN, ""))
        fields["host"] = host
        fields["phase"] = event.phase
        if event.score is not None:
            fields[SCORE_COLUMN] = json.dumps(event.score)
            fields[PREDICTED_COLUMN] = "1" if event.flagged else "0"
        if event.model_version is not None:
            fields["model_version"] = str(event.model_version)
        return fields

    def publish(self, event: WatchEvent) -> str:
        """Append ``event``; returns the entry id. Raises :class:`StreamError` on failure."""
        entry: dict[Any, Any] = self.fields(event, self.host)
        try:
            with self._lock:
                return str(
                    self._client.xadd(self.stream, entry, maxlen=self.maxlen, approximate=True)
                )
        except RedisError as exc:
            raise StreamError(f"XADD to {self.stream!r} at {self._where} failed: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def registering(registry: Registry, *, actor: str = "host-watch") -> Register:
    """A ``register`` callback for :class:`~driftline.anomaly.watcher.HostWatcher`.

    Each trained model becomes a new version of ``registry``'s model and its champion (the
    watcher scores with it from then on; ``driftline models rollback`` moves back). A retrain
    caused by drift is also written to the audit log (kind ``host_retrain``) with the drift
    verdict's reasons.
    """

    def register(trained: Trained) -> int | None:
        version = registry.register(
            trained.bundle, actor=actor, reason=trained.reason, tags={"trained_by": actor}
        )
        if registry.alias(CHAMPION) != version:
            registry.promote(version, actor=actor, reason=trained.reason)
        drift = trained.drift
        if drift is not None:
            with registry.store.sessions.begin() as session:
                queries.add_audit(
                    session=session,
                    kind="host_retrain",
                    actor=actor,
                    model_version=version,
                    message=(
                        f"{registry.model_name}: version {trained.replaced} → {version}, "
                        f"retrained on {trained.rows} recent observations after lasting "
                        "critical drift"
                    ),
                    details={
                        "model_name": registry.model_name,
                        "from_version": trained.replaced,
                        "to_version": version,
                        "rows": trained.rows,
                        "severity": drift.severity,
                        "drifted_features": list(drift.drifted_features),
                        "reasons": list(drift.reasons),
                    },
                )
        return version

    return register
