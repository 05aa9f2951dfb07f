"""Open a stream source from a URL: ``kafka://HOST:PORT/TOPIC`` or a Redis URL."""

from __future__ import annotations

from typing import Any

from driftline.errors import ConfigurationError
from driftline.streams.redis_source import RedisStreamSource
from driftline.streams.source import StreamSource

__all__ = ["open_source"]


def open_source(
    url: str | None,
    settings: Any,
    *,
    consumer: str,
    group: str | None = None,
    output: str | None = None,
    dead_letter: str | None = None,
    labels: str | None = None,
    block_ms: int = 1_000,
    session_timeout_ms: int | None = None,
) -> StreamSource:
    """The source ``driftline consume --source URL`` reads.

    ``kafka://HOST:PORT/TOPIC`` is a :class:`~driftline.streams.kafka_source.KafkaSource` on
    TOPIC (output ``<TOPIC>.predictions`` and dead letters ``<TOPIC>.dead`` unless given;
    needs the ``kafka`` extra). ``redis://…`` (or ``None``: ``DRIFTLINE_REDIS_URL``) is a
    :class:`~driftline.streams.redis_source.RedisStreamSource` on ``DRIFTLINE_STREAM_INPUT``.
    ``group`` defaults to ``DRIFTLINE_STREAM_GROUP``.

    >>> open_source("nats://x", None, consumer="c1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: --source must be kafka://HOST:PORT/TOPIC or a ...
    """
    scheme = (url or "redis://").split("://", 1)[0]
    if scheme == "kafka":
        try:
            from driftline.streams.kafka_source import KafkaSource  # noqa: PLC0415 — the kafka extra
        except ImportError as exc:  # pragma: no cover - the dev install has the extra
            raise ConfigurationError(
                "Kafka needs the optional extra: pip install 'driftline[kafka]'"
            ) from exc
        assert url is not None
        options: dict[str, Any] = {}
        if session_timeout_ms is not None:
            options["session_timeout_ms"] = session_timeout_ms
        return KafkaSource.from_url(
            url,
            group=group or settings.stream_group,
            consumer=consumer,
            output=output,
            dead_letter=dead_letter,
            labels=labels,
            block_ms=block_ms,
            **options,
        )
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"--source must be kafka://HOST:PORT/TOPIC or a redis:// URL, got {url!r}"
        )
    if labels is not None:
        raise ConfigurationError(
            "a Redis source reads labels from its input stream (events with a label field); "
            "--labels-topic is for Kafka"
        )
    update: dict[str, Any] = {}
    if url is not None:
        update["redis_url"] = url
    if group is not None:
        update["stream_group"] = group
    if output is not None:
        update["stream_output"] = output
    source = RedisStreamSource.from_settings(
        settings.model_copy(update=update), consumer=consumer, block_ms=block_ms
    )
    if dead_letter is not None:
        source.dead_letter_stream = dead_letter
    return source
