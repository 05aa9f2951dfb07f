"""Kafka as a :class:`~driftline.streams.source.StreamSource` (optional extra ``kafka``).

One :class:`KafkaSource` is one member of a Kafka consumer group (``confluent-kafka``, that is
librdkafka) subscribed to the input topic, and optionally to a labels topic:

* :meth:`~KafkaSource.read` is one ``consume`` of at most ``count`` messages; the group
  assigns partitions, and starts a partition the group never committed at its beginning
  (``auto.offset.reset=earliest``);
* :meth:`~KafkaSource.ack` commits offsets synchronously, and per partition only up to the
  first message read and not yet acked, so a commit never covers an event whose prediction is
  not durable. Auto-commit is off;
* :meth:`~KafkaSource.rewind` seeks every partition back to its last commit;
* there is nothing to claim (:meth:`~KafkaSource.claim_stale` returns nothing): when a member
  dies or leaves, the group coordinator hands its partitions to the others, which resume at
  the last commit;
* output and dead letters are produced (``acks=all``) and flushed before the batch is acked.

A message's value is a JSON object, the body of ``POST /predict``: ``{"features": {...} or
[...], "request_id": "..."}`` (``request_id`` optional); on the labels topic
``{"request_id": "...", "label": ...}``. Without its own request id an event is logged under
``<topic>/<partition>/<offset>``, the same on every delivery. Output and dead-letter messages
are JSON objects with the fields of the Redis entries (text values), keyed by request id.

>>> parse_kafka_url("kafka://127.0.0.1:9092/loans")
('127.0.0.1:9092', 'loans')
>>> parse_kafka_url("kafka://k1:9092,k2:9092/loans.v2")
('k1:9092,k2:9092', 'loans.v2')
>>> message_fields(b'{"features": {"age": 35}, "request_id": "flow-42"}')
{'features': '{"age": 35}', 'request_id': 'flow-42'}
>>> message_fields(b'{"request_id": "flow-42", "label": 1}')
{'request_id': 'flow-42', 'label': '1'}
>>> message_fields(b"oops")
{'value': 'oops'}
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from driftline.errors import ConfigurationError
from driftline.streams.source import (
    StreamError,
    StreamEvent,
    _json_ready,
    check_request_id_room,
)

__all__ = [
    "KafkaSource",
    "create_topics",
    "message_fields",
    "parse_kafka_url",
    "produce",
]

log = logging.getLogger(__name__)

#: What a Kafka source appends to the topic in a default request id: ``/<int32>/<int64>``.
_LONGEST_SUFFIX = 2 + 10 + 19
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def parse_kafka_url(url: str) -> tuple[str, str]:
    """``(bootstrap servers, topic)`` of ``kafka://HOST:PORT[,HOST:PORT…]/TOPIC``."""
    parts = urlsplit(url)
    topic = parts.path.lstrip("/")
    if parts.scheme != "kafka" or not parts.netloc or not topic:
        raise ConfigurationError(f"expected kafka://HOST:PORT/TOPIC, got {url!r}")
    _check_topic(topic)
    return parts.netloc, topic


def _check_topic(topic: str) -> None:
    if not _TOPIC.match(topic) or topic in (".", ".."):
        raise ConfigurationError(
            f"a Kafka topic has 1 to 249 characters out of [A-Za-z0-9._-], got {topic!r}"
        )


def message_fields(value: bytes | None) -> dict[str, str]:
    """The event fields of a message value: each member of its JSON object as text
    (``features`` always as JSON). A value that is not a JSON object becomes the single field
    ``value``, which the consumer dead-letters as malformed."""
    try:
        body = json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return {"value": (value or b"").decode("utf-8", "replace")}
    return {
        str(k): v if isinstance(v, str) and k != "features" else json.dumps(v)
        for k, v in body.items()
    }


def _parse_id(event_id: str) -> tuple[str, int, int]:
    topic, partition, offset = event_id.rsplit("/", 2)
    return topic, int(partition), int(offset)


class KafkaSource:
    """A consumer-group member on a Kafka topic, producing output and dead letters to Kafka.

    Parameters
    ----------
    bootstrap
        Bootstrap servers (``host:port[,host:port…]``).
    topic
        Input topic.
    group
        Consumer group id.
    consumer
        This member's name (the Kafka ``client.id``; it shows in the group's description).
    output
        Output topic (default ``<topic>.predictions``).
    dead_letter
        Dead-letter topic (default ``<topic>.dead``).
    labels
        A topic of label events to consume too (none by default).
    start
        Where a partition the group never committed starts: ``"earliest"`` or ``"latest"``.
    session_timeout_ms
        How long the group waits for a silent member before handing its partitions over.
    block_ms
        Longest wait of one read.
    timeout_seconds
        Bound of every broker round trip the source waits for (commit, produce, metadata).
    config
        More librdkafka settings for both the consumer and the producer (``security.protocol``,
        ``sasl.*`` …); they win over the ones above.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        topic: str,
        group: str,
        consumer: str,
        output: str | None = None,
        dead_letter: str | None = None,
        labels: str | None = None,
        start: str = "earliest",
        session_timeout_ms: int = 45_000,
        block_ms: int = 1_000,
        timeout_seconds: float = 30.0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if start not in ("earliest", "latest"):
            raise ConfigurationError(f"start must be 'earliest' or 'latest', got {start!r}")
        if session_timeout_ms < 1:
            raise ConfigurationError(f"session_timeout_ms must be >= 1, got {session_timeout_ms}")
        if timeout_seconds <= 0:
            raise ConfigurationError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        self.output = output or f"{topic}.predictions"
        self.dead_letter_stream = dead_letter or f"{topic}.dead"
        for name in (topic, self.output, self.dead_letter_stream, *([labels] if labels else [])):
            _check_topic(name)
        check_request_id_room(topic, _LONGEST_SUFFIX, "input topic")
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.labels = labels
        self._consumer_name = consumer
        self.timeout_seconds = timeout_seconds
        self._max_block_ms = block_ms
        common: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": consumer,
            "logger": log,
            "error_cb": self._on_error,
            "socket.connection.setup.timeout.ms": int(timeout_seconds * 1000),
        }
        self._consumer = Consumer(
            {
                **common,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": start,
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(1, min(3_000, session_timeout_ms // 3)),
                **(config or {}),
            }
        )
        self._producer = Producer(
            {
                **common,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": int(timeout_seconds * 1000),
                **(config or {}),
            }
        )
        self._subscribed = False
        #: The partitions the group gave this member (``(topic, partition)``), as of the last
        #: rebalance; a snapshot another thread may read.
        self.partitions: frozenset[tuple[str, int]] = frozenset()
        self._down: str | None = None
        # Per partition: offsets read and not yet committed, in read order, with "acked".
        self._inflight: dict[tuple[str, int], dict[int, bool]] = {}
        # Per partition: where the group resumes it (our last commit, else our first read).
        self._resume: dict[tuple[str, int], int] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaSource:
        """A source on ``kafka://HOST:PORT/TOPIC``; ``options`` are the keyword arguments."""
        bootstrap, topic = parse_kafka_url(url)
        return cls(bootstrap, topic=topic, **options)

    @property
    def name(self) -> str:
        return self.topic

    @property
    def consumer(self) -> str:
        return self._consumer_name

    def request_id(self, event: StreamEvent) -> str:
        """``<topic>/<partition>/<offset>`` (the event id)."""
        return event.id

    # --- group membership -----------------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN or error.fatal():
            self._down = str(error)
        log.warning("Kafka: %s", error)

    def _forget(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self._inflight.pop((tp.topic, tp.partition), None)
            self._resume.pop((tp.topic, tp.partition), None)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget(partitions)
        self.partitions = self.partitions | {(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing of a revoked partition is committed any more: what was read and not acked
        # goes to the next owner, which starts at the last commit.
        self._forget(partitions)
        self.partitions = self.partitions - {(p.topic, p.partition) for p in partitions}
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def ensure_group(self) -> None:
        """Check that the broker answers and the topics exist, then join the group."""
        if self._subscribed:
            return
        try:
            metadata = self._consumer.list_topics(timeout=self.timeout_seconds)
        except KafkaException as exc:
            raise StreamError(f"Kafka unreachable at {self.bootstrap}: {exc}") from exc
        for topic in (self.topic, *([self.labels] if self.labels else [])):
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise StreamError(
                    f"Kafka topic {topic!r} does not exist at {self.bootstrap}"
                    + (f" ({found.error})" if found is not None and found.error else "")
                )
        self._consumer.subscribe(
            [self.topic, *([self.labels] if self.labels else [])],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        self._subscribed = True

    # --- reading and acking ---------------------------------------------------------------------

    def read(self, count: int, block_ms: int) -> list[StreamEvent]:
        if count < 1:
            raise ConfigurationError(f"count must be >= 1, got {count}")
        self.ensure_group()
        if self._down is not None:
            down, self._down = self._down, None
            raise StreamError(f"Kafka unreachable at {self.bootstrap}: {down}")
        try:
            messages = self._consumer.consume(
                num_messages=count, timeout=min(block_ms, self._max_block_ms) / 1000.0
            )
        except KafkaException as exc:
            raise StreamError(f"consume from {self.topic!r} failed: {exc}") from exc
        events: list[StreamEvent] = []
        for message in messages:
            event = self._event(message)
            if event is not None:
                events.append(event)
        return events

    def _event(self, message: Message) -> StreamEvent | None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise StreamError(f"consume from {self.topic!r} failed: {error}")
            log.warning("Kafka consumer: %s", error)
            return None
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:  # pragma: no cover
            return None
        key = (topic, partition)
        self._inflight.setdefault(key, {})[offset] = False
        self._resume.setdefault(key, offset)
        return StreamEvent(f"{topic}/{partition}/{offset}", message_fields(message.value()))

    def claim_stale(self, count: int) -> list[StreamEvent]:
        """Nothing: the group coordinator reassigns the partitions of a dead member."""
        return []

    def rewind(self) -> None:
        """Seek every partition read since its last commit back to that commit."""
        for (topic, partition), offset in list(self._resume.items()):
            if not self._inflight.pop((topic, partition), None):
                continue
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # revoked meanwhile: its next owner re-reads it
                log.info("no rewind of %s[%d]: %s", topic, partition, exc)

    def ack(self, ids: Sequence[str]) -> None:
        touched: set[tuple[str, int]] = set()
        for event_id in ids:
            topic, partition, offset = _parse_id(event_id)
            inflight = self._inflight.get((topic, partition))
            if inflight is None or offset not in inflight:
                continue  # revoked since it was read: its next owner handles it again
            inflight[offset] = True
            touched.add((topic, partition))
        commits: list[TopicPartition] = []
        for key in touched:
            inflight = self._inflight[key]
            upto: int | None = None
            for offset, done in list(inflight.items()):  # read order: ascending offsets
                if not done:
                    break
                del inflight[offset]
                upto = offset + 1
            if upto is not None:
                commits.append(TopicPartition(key[0], key[1], upto))
        if not commits:
            return
        try:
            self._consumer.commit(offsets=commits, asynchronous=False)
        except KafkaException as exc:
            raise StreamError(f"commit to group {self.group!r} failed: {exc}") from exc
        for tp in commits:
            self._resume[(tp.topic, tp.partition)] = tp.offset

    def lag(self) -> dict[tuple[str, int], int]:
        """Per assigned partition: its high watermark (as last fetched) minus the group's
        committed offset."""
        lag: dict[tuple[str, int], int] = {}
        try:
            assignment = self._consumer.assignment()
            for tp in assignment:
                key = (tp.topic, tp.partition)
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue  # nothing fetched yet
                done = self._resume.get(key)
                if done is None:
                    [committed] = self._consumer.committed([tp], timeout=self.timeout_seconds)
                    done = committed.offset if committed.offset >= 0 else low
                    if done < 0:
                        continue
                    self._resume[key] = done
                lag[key] = max(0, high - done)
        except KafkaException as exc:
            raise StreamError(f"cannot read the lag of group {self.group!r}: {exc}") from exc
        return lag

    # --- producing ------------------------------------------------------------------------------

    def _produce(self, topic: str, entries: Sequence[Mapping[str, str]]) -> None:
        if not entries:
            return
        failures: list[str] = []

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for fields in entries:
            key = fields.get("request_id")
            value = json.dumps(dict(fields)).encode()
            while True:
                try:
                    self._producer.produce(
                        topic,
                        value=value,
                        key=key.encode() if key is not None else None,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.1)
                except KafkaException as exc:
                    raise StreamError(f"produce to {topic!r} failed: {exc}") from exc
        left = self._producer.flush(self.timeout_seconds)
        if left:
            raise StreamError(
                f"{left} message(s) to {topic!r} not delivered within {self.timeout_seconds}s"
            )
        if failures:
            raise StreamError(f"produce to {topic!r} failed: {failures[0]}")

    def publish(self, entries: Sequence[Mapping[str, str]]) -> None:
        self._produce(self.output, entries)

    def dead_letter(self, entries: Sequence[Mapping[str, str]]) -> None:
        self._produce(self.dead_letter_stream, entries)

    def close(self) -> None:
        """Leave the group (its partitions go to the other members at once)."""
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the Kafka consumer: %s", exc)
        self._producer.flush(self.timeout_seconds)


def create_topics(
    bootstrap: str, topics: Iterable[str], *, partitions: int = 1, timeout_seconds: float = 30.0
) -> None:
    """Create topics (an existing one is kept): for demos and tests; production topics are
    usually made by whoever runs the cluster."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": log}
    admin = AdminClient(conf)
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics],
        request_timeout=timeout_seconds,
    )
    for topic, future in futures.items():
        try:
            future.result(timeout_seconds)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise StreamError(f"cannot create Kafka topic {topic!r}: {exc}") from exc


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    request_ids: Iterable[str | None] | None = None,
    config: Mapping[str, Any] | None = None,
    timeout_seconds: float = 60.0,
) -> list[str]:
    """Produce one feature event per record; returns the event ids (``topic/partition/offset``),
    in order. A small helper for demos, tests and benchmarks; any producer that writes the
    message format works."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "logger": log, **(config or {})}
    )
    rids = iter(request_ids) if request_ids is not None else None
    ids: list[str | None] = []
    failures: list[str] = []

    def delivered(index: int) -> Any:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(str(error))
            else:
                ids[index] = f"{message.topic()}/{message.partition()}/{message.offset()}"

        return report

    for record in records:
        rid = next(rids) if rids is not None else None
        body: dict[str, Any] = {"features": _json_ready(record)}
        if rid is not None:
            body["request_id"] = rid
        ids.append(None)
        value = json.dumps(body, allow_nan=False).encode()
        while True:
            try:
                producer.produce(topic, value=value, on_delivery=delivered(len(ids) - 1))
                break
            except BufferError:
                producer.poll(0.1)
    deadline = time.monotonic() + timeout_seconds
    while producer.flush(1.0) and time.monotonic() < deadline:
        pass
    if failures or any(i is None for i in ids):
        raise StreamError(
            f"produce to {topic!r}: {sum(i is None for i in ids)} message(s) not delivered"
            + (f" ({failures[0]})" if failures else "")
        )
    return [i for i in ids if i is not None]
