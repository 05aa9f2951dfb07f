"""Optional OpenTelemetry tracing: spans for HTTP requests, predictions, store writes, stream
batches and monitor runs.

OpenTelemetry is an extra (``pip install 'driftline[tracing]'``). Without it every helper here
is a no-op, so the rest of driftline calls them unconditionally.

Where spans go (``DRIFTLINE_TRACING``):

* ``none`` (default): driftline exports nothing itself. If the embedding application installed
  a global OpenTelemetry tracer provider, driftline's spans go there; otherwise they are not
  even created (the hot path pays one attribute lookup).
* ``console``: one JSON object per finished span on stdout.
* ``otlp``: OTLP over HTTP, configured by OpenTelemetry's own variables
  (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``, ...); needs the package
  ``opentelemetry-exporter-otlp-proto-http``.

driftline keeps its provider to itself (it never replaces the global one), so it cannot clash
with MLflow's tracing or the application's.

>>> with span("driftline.example", {"driftline.rows": 3, "driftline.note": None}) as s:
...     s.set_attribute("driftline.outcome", "ok")
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import driftline
from driftline.errors import ConfigurationError

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    OTEL_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised in a subprocess without the extra
    OTEL_AVAILABLE = False

__all__ = [
    "MODES",
    "OTEL_AVAILABLE",
    "TRACER_NAME",
    "SpanLike",
    "annotate",
    "configure_tracing",
    "enabled",
    "flush",
    "server_span",
    "set_error",
    "set_tracer_provider",
    "span",
    "traced",
]

log = logging.getLogger(__name__)

TRACER_NAME = "driftline"
MODES = ("none", "console", "otlp")

#: Attribute values OpenTelemetry accepts (``None`` values are dropped here).
AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]
Attributes = Mapping[str, AttributeValue | None]

P = ParamSpec("P")
R = TypeVar("R")


class SpanLike(Protocol):
    """What driftline calls on a span (an OpenTelemetry span, or the no-op one)."""

    def set_attribute(self, key: str, value: Any) -> Any: ...

    def update_name(self, name: str) -> Any: ...

    def is_recording(self) -> bool: ...


class _NoSpan:
    """Stands in for a span when tracing is off or OpenTelemetry is not installed."""

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def update_name(self, name: str) -> None:
        return None

    def is_recording(self) -> bool:
        return False


_NO_SPAN = _NoSpan()


class _State:
    """The provider driftline exports to (``configure_tracing`` or ``set_tracer_provider``)."""

    provider: Any = None
    tracer: Any = None


_state = _State()


def _clean(attributes: Attributes | None) -> dict[str, AttributeValue]:
    if not attributes:
        return {}
    return {k: v for k, v in attributes.items() if v is not None}


def set_tracer_provider(provider: Any) -> None:
    """Export driftline's spans to ``provider`` (an OpenTelemetry SDK ``TracerProvider``);
    ``None`` goes back to the global provider. Tests use it with an in-memory exporter."""
    _state.provider = provider
    _state.tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None


def enabled() -> bool:
    """Whether spans are recorded anywhere: a driftline provider, or a global SDK provider."""
    if not OTEL_AVAILABLE:
        return False
    if _state.provider is not None:
        return True
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


def _get_tracer() -> Any:
    if _state.tracer is not None:
        return _state.tracer
    return trace.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def span(name: str, attributes: Attributes | None = None) -> Iterator[SpanLike]:
    """A span around the block, the current span's child. An exception leaving the block is
    recorded on the span, which then has an error status."""
    if not enabled():
        yield _NO_SPAN
        return
    with _get_tracer().start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


@contextlib.contextmanager
def server_span(
    name: str, headers: Mapping[str, str], attributes: Attributes | None = None
) -> Iterator[SpanLike]:
    """The span of one incoming request; its parent comes from the W3C ``traceparent`` header
    when the caller sent one."""
    if not enabled():
        yield _NO_SPAN
        return
    parent = propagate.extract(headers) if "traceparent" in headers else None
    with _get_tracer().start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=_clean(attributes)
    ) as current:
        yield current


def annotate(attributes: Attributes) -> None:
    """Set attributes on the current span (nothing when no span is recording)."""
    if not enabled():
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_clean(attributes))


def set_error(current: SpanLike, description: str) -> None:
    """Give a span an error status (for failures that raised nothing, such as a 5xx answer)."""
    if OTEL_AVAILABLE and current.is_recording():
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415 — OpenTelemetry is optional (tracing extra)

        cast(Any, current).set_status(Status(StatusCode.ERROR, description))


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function (plain or ``async``) so that each call runs in a span ``name``."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not enabled():
                    return await afn(*args, **kwargs)
                with span(name):
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not enabled():
                return fn(*args, **kwargs)
            with span(name):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def _exporter(mode: str) -> Any:
    if mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415 — OpenTelemetry is optional (tracing extra)

        return ConsoleSpanExporter(service_name=TRACER_NAME, out=sys.stdout)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415 — OpenTelemetry is optional (tracing extra)
    except ImportError as exc:
        raise ConfigurationError(
            "DRIFTLINE_TRACING=otlp needs the OTLP exporter: "
            "pip install opentelemetry-exporter-otlp-proto-http"
        ) from exc
    return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_* variables


def configure_tracing(settings: Any) -> None:
    """Start exporting driftline's spans as ``settings.tracing`` says (see the module doc).

    ``none`` changes nothing. Raises :class:`~driftline.errors.ConfigurationError` when the
    mode needs a package that is not installed.
    """
    mode = settings.tracing
    if mode not in MODES:
        raise ConfigurationError(f"tracing must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "none":
        return
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 — OpenTelemetry is optional (tracing extra)
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415 — OpenTelemetry is optional (tracing extra)
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415 — OpenTelemetry is optional (tracing extra)
    except ImportError as exc:
        raise ConfigurationError(
            f"DRIFTLINE_TRACING={mode} needs OpenTelemetry: pip install 'driftline[tracing]'"
        ) from exc
    exporter = _exporter(mode)
    resource: dict[str, Any] = {"service.version": driftline.__version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # OpenTelemetry's own variable wins
        resource["service.name"] = TRACER_NAME
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    previous = _state.provider
    set_tracer_provider(provider)
    if previous is not None:
        previous.shutdown()
    log.info("tracing: exporting spans to %s", mode)


def flush(timeout_seconds: float = 5.0) -> bool:
    """Export every finished span now (before a process exits); ``True`` if all went out."""
    if _state.provider is None:
        return True
    return bool(_state.provider.force_flush(int(timeout_seconds * 1000)))
