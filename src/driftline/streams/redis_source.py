"""Redis Streams as a :class:`~driftline.streams.source.StreamSource`.

One :class:`RedisStreamSource` is one consumer of a consumer group on the input stream:

* the group is created on first use (``XGROUP CREATE … MKSTREAM``; an existing group is kept),
  starting at ``start_id`` (``"0"``: everything already in the stream; ``"$"``: only new
  events);
* :meth:`~RedisStreamSource.read` first re-reads this consumer's own pending entries
  (``XREADGROUP … 0``: what it read before a crash under the same name), then new ones
  (``XREADGROUP … >`` with ``COUNT`` and ``BLOCK``);
* :meth:`~RedisStreamSource.claim_stale` takes over entries another consumer has left pending
  longer than ``claim_idle_ms`` (``XAUTOCLAIM``, resuming its cursor across calls);
* :meth:`~RedisStreamSource.ack` is ``XACK``; output and dead letters are ``XADD`` with
  ``MAXLEN ~`` (approximate trimming keeps them bounded at little cost).

Entries that were trimmed from the input stream while pending come back without fields (from
``XREADGROUP`` and from ``XAUTOCLAIM``'s list of deleted ids); the consumer acks them, there is
nothing left to predict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
from redis.exceptions import RedisError, ResponseError

from driftline.errors import ConfigurationError
from driftline.streams.source import (
    StreamError,
    StreamEvent,
    check_request_id_room,
    encode_event,
)

__all__ = ["RedisStreamSource", "dead_letter_key", "produce"]

log = logging.getLogger(__name__)

#: The longest id Redis gives an entry: two unsigned 64-bit integers and a dash.
_LONGEST_ENTRY_ID = 41


def dead_letter_key(stream: str) -> str:
    """The dead-letter stream of an input stream.

    >>> dead_letter_key("driftline:features")
    'driftline:features:dead'
    """
    return f"{stream}:dead"


def _connect(url: str, *, block_ms: int = 0) -> redis.Redis:
    # The socket timeout must outlast a blocking read, or every idle read would fail.
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5.0,
        socket_timeout=block_ms / 1000.0 + 10.0,
        retry_on_timeout=False,
    )


def _entries(raw: Any) -> list[StreamEvent]:
    """Events from an ``XREADGROUP`` or ``XAUTOCLAIM`` entry list (RESP2 or RESP3 shape)."""
    out: list[StreamEvent] = []
    for entry_id, fields in raw or []:
        out.append(StreamEvent(str(entry_id), dict(fields or {})))
    return out


class RedisStreamSource:
    """A consumer-group member on a Redis stream, writing output and dead letters to Redis.

    Parameters
    ----------
    url
        Redis URL (``redis://host:port/db``).
    stream
        Input stream key.
    group
        Consumer group name.
    consumer
        This consumer's name; a restarted consumer should reuse it to resume its own pending
        entries at once (others are claimed after ``claim_idle_ms``).
    output
        Output stream key.
    dead_letter
        Dead-letter stream key (default ``<stream>:dead``).
    claim_idle_ms
        How long an entry must sit unacked before another consumer may claim it. Longer than
        the slowest batch, or live consumers lose work to each other (harmless: duplicates
        are recognized, but wasted).
    maxlen
        Approximate cap of the output and dead-letter streams.
    start_id
        Where a newly created group starts: ``"0"`` (default) or ``"$"``.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        group: str,
        consumer: str,
        output: str,
        dead_letter: str | None = None,
        claim_idle_ms: int = 30_000,
        maxlen: int = 100_000,
        start_id: str = "0",
        block_ms: int = 1_000,
    ) -> None:
        if claim_idle_ms < 1:
            raise ConfigurationError(f"claim_idle_ms must be >= 1, got {claim_idle_ms}")
        if maxlen < 1:
            raise ConfigurationError(f"maxlen must be >= 1, got {maxlen}")
        if start_id not in ("0", "$"):
            raise ConfigurationError(f"start_id must be '0' or '$', got {start_id!r}")
        check_request_id_room(stream, 1 + _LONGEST_ENTRY_ID, "input stream")
        self.url = url
        self.stream = stream
        self.group = group
        self._consumer = consumer
        self.output = output
        self.dead_letter_stream = dead_letter or dead_letter_key(stream)
        self.claim_idle_ms = claim_idle_ms
        self.maxlen = maxlen
        self.start_id = start_id
        self._client = _connect(url, block_ms=block_ms)
        self._max_block_ms = block_ms
        self._group_ready = False
        self._own_backlog = True  # re-read our own pending entries before new ones
        self._claim_cursor = "0-0"

    @classmethod
    def from_settings(
        cls, settings: Any, *, consumer: str, block_ms: int = 1_000
    ) -> RedisStreamSource:
        return cls(
            settings.redis_url,
            stream=settings.stream_input,
            group=settings.stream_group,
            consumer=consumer,
            output=settings.stream_output,
            claim_idle_ms=settings.stream_claim_idle_ms,
            maxlen=settings.stream_maxlen,
            block_ms=block_ms,
        )

    @property
    def name(self) -> str:
        return self.stream

    @property
    def consumer(self) -> str:
        return self._consumer

    def request_id(self, event: StreamEvent) -> str:
        """``<stream>:<entry id>``."""
        return f"{self.stream}:{event.id}"

    def lag(self) -> dict[tuple[str, int], int]:
        """Entries of the stream the group has not acked: never delivered (``lag`` of
        ``XINFO GROUPS``) plus delivered and pending; one partition, 0."""
        try:
            # Any: redis-py 7 types replies as Awaitable | Any (the Feast extra pins redis<8)
            groups: Any = self._client.xinfo_groups(self.stream)
        except RedisError as exc:
            raise StreamError(f"XINFO GROUPS on {self.stream!r} failed: {exc}") from exc
        for group in groups:
            if group.get("name") == self.group:
                if group.get("lag") is None:  # Redis cannot tell (entries were deleted)
                    return {}
                return {(self.stream, 0): int(group["lag"]) + int(group.get("pending") or 0)}
        return {}

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists."""
        try:
            self._client.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StreamError(f"cannot create group {self.group!r}: {exc}") from exc
        except RedisError as exc:
            raise StreamError(f"Redis unreachable at {self._safe_url}: {exc}") from exc
        self._group_ready = True

    @property
    def _safe_url(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    def _readgroup(self, start: str, count: int, block_ms: int | None) -> list[StreamEvent]:
        if not self._group_ready:
            self.ensure_group()
        try:
            reply: Any = self._client.xreadgroup(
                self.group, self._consumer, {self.stream: start}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream or group was deleted under us
                self._group_ready = False
            raise StreamError(f"XREADGROUP on {self.stream!r} failed: {exc}") from exc
        except RedisError as exc:
            raise StreamError(f"Redis unreachable at {self._safe_url}: {exc}") from exc
        if not reply:
            return []
        if isinstance(reply, Mapping):  # RESP3: {stream: [entries]}
            return [e for raw in reply.values() for e in _entries(raw[0] if raw else [])]
        return [e for _, raw in reply for e in _entries(raw)]

    def read(self, count: int, block_ms: int) -> list[StreamEvent]:
        if count < 1:
            raise ConfigurationError(f"count must be >= 1, got {count}")
        if self._own_backlog:
            events = self._readgroup("0", count, None)
            if events:
                return events
            self._own_backlog = False
        return self._readgroup(">", count, min(block_ms, self._max_block_ms))

    def claim_stale(self, count: int) -> list[StreamEvent]:
        if count < 1:
            raise ConfigurationError(f"count must be >= 1, got {count}")
        if not self._group_ready:
            self.ensure_group()
        try:
            reply: Any = self._client.xautoclaim(
                self.stream,
                self.group,
                self._consumer,
                self.claim_idle_ms,
                start_id=self._claim_cursor,
                count=count,
            )
        except RedisError as exc:
            raise StreamError(f"XAUTOCLAIM on {self.stream!r} failed: {exc}") from exc
        self._claim_cursor = str(reply[0])
        events = _entries(reply[1])
        trimmed = [str(i) for i in reply[2]] if len(reply) > 2 and reply[2] else []
        if trimmed:
            # Redis already dropped them from the group's pending list; hand them on without
            # fields so the consumer counts them like any other trimmed entry.
            log.warning(
                "%d pending entr(y/ies) of %s were trimmed before anyone acked them",
                len(trimmed),
                self.stream,
            )
            events.extend(StreamEvent(i, {}) for i in trimmed)
        return events

    def rewind(self) -> None:
        self._own_backlog = True

    def ack(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            self._client.xack(self.stream, self.group, *ids)
        except RedisError as exc:
            raise StreamError(f"XACK on {self.stream!r} failed: {exc}") from exc

    def _append(self, key: str, entries: Sequence[Mapping[str, str]]) -> None:
        if not entries:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for fields in entries:
                    entry: dict[Any, Any] = dict(fields)
                    pipe.xadd(key, entry, maxlen=self.maxlen, approximate=True)
                pipe.execute()
        except RedisError as exc:
            raise StreamError(f"XADD to {key!r} failed: {exc}") from exc

    def publish(self, entries: Sequence[Mapping[str, str]]) -> None:
        self._append(self.output, entries)

    def dead_letter(self, entries: Sequence[Mapping[str, str]]) -> None:
        self._append(self.dead_letter_stream, entries)

    def close(self) -> None:
        self._client.close()


def produce(
    redis_url: str,
    stream: str,
    records: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    request_ids: Iterable[str | None] | None = None,
    chunk: int = 500,
) -> list[str]:
    """Append one event per feature record to ``stream``; returns the event ids, in order.

    A small helper for demos and tests; any producer that writes the event format works
    (``XADD stream * features '{"age": 35, …}' request_id flow-42``).
    """
    client = _connect(redis_url)
    ids: list[str] = []
    rids = iter(request_ids) if request_ids is not None else None
    try:
        pipe = client.pipeline(transaction=False)
        pending = 0
        for record in records:
            rid = next(rids) if rids is not None else None
            entry: dict[Any, Any] = encode_event(record, request_id=rid)
            pipe.xadd(stream, entry)
            pending += 1
            if pending >= chunk:
                ids.extend(str(i) for i in pipe.execute())
                pending = 0
        if pending:
            ids.extend(str(i) for i in pipe.execute())
    finally:
        client.close()
    return ids
