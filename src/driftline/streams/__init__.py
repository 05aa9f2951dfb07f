"""Stream ingestion: feature events from a broker, predictions to an output stream and the store.

``driftline consume`` runs a :class:`StreamConsumer` over a :class:`RedisStreamSource`.
:class:`StreamSource` is the interface another broker would implement; only Redis Streams ship.
"""

from __future__ import annotations

from driftline.streams.consumer import ConsumerStats, StreamConsumer, StreamMetrics
from driftline.streams.redis_source import RedisStreamSource, dead_letter_key, produce
from driftline.streams.source import (
    StreamError,
    StreamEvent,
    StreamSource,
    decode_event,
    encode_event,
)

__all__ = [
    "ConsumerStats",
    "RedisStreamSource",
    "StreamConsumer",
    "StreamError",
    "StreamEvent",
    "StreamMetrics",
    "StreamSource",
    "dead_letter_key",
    "decode_event",
    "encode_event",
    "produce",
]
