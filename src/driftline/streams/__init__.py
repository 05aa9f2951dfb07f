"""Stream ingestion: feature events from a broker, predictions to an output stream and the store.

``driftline consume`` runs one :class:`StreamConsumer` loop over a :class:`StreamSource`: a
:class:`RedisStreamSource`, or a :class:`~driftline.streams.kafka_source.KafkaSource` (module
``driftline.streams.kafka_source``, optional extra ``kafka``; not imported here).
:func:`open_source` picks one from a URL.
"""

from __future__ import annotations

from driftline.streams.consumer import ConsumerStats, StreamConsumer, StreamMetrics
from driftline.streams.factory import open_source
from driftline.streams.redis_source import RedisStreamSource, dead_letter_key, produce
from driftline.streams.source import (
    StreamError,
    StreamEvent,
    StreamSource,
    decode_event,
    decode_label,
    encode_event,
    is_label_event,
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
    "decode_label",
    "encode_event",
    "is_label_event",
    "open_source",
    "produce",
]
