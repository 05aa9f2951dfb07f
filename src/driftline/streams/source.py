"""What a stream consumer needs from a message broker, and the event format.

A :class:`StreamSource` is one member of a consumer group on one input stream. The consumer
calls it in this order for each batch: :meth:`~StreamSource.claim_stale` or
:meth:`~StreamSource.read`, then :meth:`~StreamSource.dead_letter` and
:meth:`~StreamSource.publish`, then :meth:`~StreamSource.ack`. Anything read and not acked
stays pending in the broker and is delivered again (to this consumer after a restart, or to
another one once the broker gives its share away): delivery is at-least-once.

Two brokers implement it: Redis Streams
(:class:`~driftline.streams.redis_source.RedisStreamSource`: claiming is ``XAUTOCLAIM``, ack is
``XACK``) and Kafka (:class:`~driftline.streams.kafka_source.KafkaSource`: a batch is a poll,
ack a commit of offsets, claiming is what the group rebalance does).

An event carries a field ``features`` holding JSON (an object keyed by feature name, or a list
in schema order) and, optionally, ``request_id``. An event with a ``label`` field and no
``features`` is a label for an earlier prediction (``request_id`` required):

>>> fields = encode_event({"age": 35, "income": float("nan")}, request_id="flow-42")
>>> fields
{'features': '{"age": 35, "income": null}', 'request_id': 'flow-42'}
>>> decode_event(StreamEvent("1-0", fields))
({'age': 35, 'income': None}, 'flow-42', [])
>>> decode_event(StreamEvent("2-0", {"features": "{oops"}))[2][0]["type"]
'value_error.json'
>>> label = StreamEvent("3-0", {"request_id": "flow-42", "label": "1.0"})
>>> is_label_event(label), decode_label(label)
(True, ({'request_id': 'flow-42', 'label': '1'}, []))
>>> decode_label(StreamEvent("4-0", {"label": "1"}))[1][0]["loc"]
['request_id']
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from driftline.errors import ConfigurationError, DriftlineError
from driftline.limits import MAX_REQUEST_ID_LENGTH, request_id_problem
from driftline.schema import label_text

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "StreamError",
    "StreamEvent",
    "StreamSource",
    "check_request_id_room",
    "decode_event",
    "decode_label",
    "encode_event",
    "is_label_event",
]

class StreamError(DriftlineError):
    """The stream broker failed an operation (unreachable, refused a command)."""


def check_request_id_room(name: str, longest_suffix: int, what: str) -> None:
    """Refuse an input stream name too long to prefix default request ids.

    ``longest_suffix`` is the most characters a source appends to the name (separators and
    the longest event id it can produce).

    >>> check_request_id_room("x" * 90, 42, "input stream")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: input stream name must have at most 86 characters ...
    """
    room = MAX_REQUEST_ID_LENGTH - longest_suffix
    if len(name) > room:
        raise ConfigurationError(
            f"{what} name must have at most {room} characters (it prefixes request ids), "
            f"got {len(name)}"
        )


@dataclass(frozen=True)
class StreamEvent:
    """One entry of the input stream: its broker id and its fields (text to text)."""

    id: str
    fields: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class StreamSource(Protocol):
    """One consumer of a consumer group: read, claim, acknowledge, publish.

    Every method raises :class:`StreamError` when the broker fails; nothing read is lost then,
    it is delivered again.
    """

    @property
    def name(self) -> str:
        """The input stream (used in default request ids: ``<name>:<event id>``)."""
        ...

    @property
    def consumer(self) -> str:
        """This consumer's name in the group."""
        ...

    def request_id(self, event: StreamEvent) -> str:
        """The request id of an event that carries none (unique in the broker, the same on
        every delivery, so the store's idempotent insert absorbs redeliveries)."""
        ...

    def lag(self) -> dict[tuple[str, int], int]:
        """Events not yet acked by the group, per ``(stream, partition)`` this consumer owns
        (a stream without partitions is partition 0); empty when unknown."""
        ...

    def ensure_group(self) -> None:
        """Join (or create) the consumer group; :class:`StreamError` when the broker is
        unreachable. :meth:`read` calls it when needed."""
        ...

    def read(self, count: int, block_ms: int) -> list[StreamEvent]:
        """At most ``count`` events for this consumer, waiting up to ``block_ms`` when none is
        ready. Events this consumer read earlier and never acked (say, before a crash under the
        same name) come first; then new ones."""
        ...

    def claim_stale(self, count: int) -> list[StreamEvent]:
        """Take over at most ``count`` events that another consumer read but has not acked for
        longer than the claim idle time (it died or hangs); they become this consumer's.
        Brokers that reassign a dead consumer's share themselves return nothing."""
        ...

    def rewind(self) -> None:
        """Make the next :meth:`read` start again with everything this consumer read and has
        not acked (after a batch failed half-way)."""
        ...

    def ack(self, ids: Sequence[str]) -> None:
        """Mark events done for the group: they are never delivered again (a broker that
        commits positions commits only up to the first event not yet acked)."""
        ...

    def publish(self, entries: Sequence[Mapping[str, str]]) -> None:
        """Append entries to the output stream, in order."""
        ...

    def dead_letter(self, entries: Sequence[Mapping[str, str]]) -> None:
        """Append entries to the dead-letter stream (events that cannot be predicted)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    item = getattr(value, "item", None)  # NumPy scalars
    if callable(item):
        return _json_ready(item())
    return value


def encode_event(
    features: Mapping[str, Any] | Sequence[Any], *, request_id: str | None = None
) -> dict[str, str]:
    """The fields of one input event. NaN becomes ``null`` (JSON has no NaN)."""
    fields = {"features": json.dumps(_json_ready(features), allow_nan=False)}
    if request_id is not None:
        fields["request_id"] = request_id
    return fields


def _error(loc: tuple[str, ...], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": type_}


def is_label_event(event: StreamEvent) -> bool:
    """``True`` for a label event: a ``label`` field and no ``features``."""
    return "label" in event.fields and "features" not in event.fields


def decode_label(event: StreamEvent) -> tuple[dict[str, str] | None, list[dict[str, Any]]]:
    """``(row, errors)`` of a label event: the row ``{request_id, label}`` the store takes
    (the label in its canonical text), or the errors that make it unusable, checked as
    ``POST /labels`` checks a label. A label that reads as a JSON number or boolean is one
    (``"1.0"`` is the class ``1``), as in a JSON body."""
    from pydantic import ValidationError as PydanticValidationError

    from driftline.service.schemas import LabelIn

    body: dict[str, Any] = {
        k: event.fields[k] for k in ("request_id", "label") if k in event.fields
    }
    if "label" in body:  # stream fields are text: "1", "1.0" and "true" mean what JSON means
        try:
            scalar = json.loads(body["label"])
        except ValueError:
            pass
        else:
            if isinstance(scalar, int | float) and not isinstance(scalar, str):
                body["label"] = scalar
    try:
        item = LabelIn.model_validate(body)
    except PydanticValidationError as exc:
        return None, [
            _error(tuple(str(part) for part in e["loc"]), e["msg"], e["type"]) for e in exc.errors()
        ]
    return {"request_id": item.request_id, "label": label_text(item.label)}, []


def decode_event(event: StreamEvent) -> tuple[Any, str | None, list[dict[str, Any]]]:
    """``(features, request_id, errors)`` of an event; ``errors`` lists what is malformed
    (FastAPI's shape: ``loc``, ``msg``, ``type``), empty when the event is well formed.

    Only the envelope is checked here; the features are checked against the model's schema.
    A ``request_id`` follows the HTTP API's rule (:func:`driftline.limits.request_id_problem`).
    """
    errors: list[dict[str, Any]] = []
    features: Any = None
    raw = event.fields.get("features")
    if raw is None:
        errors.append(_error(("features",), "field required", "value_error.missing"))
    else:
        try:
            features = json.loads(raw)
        except ValueError as exc:
            errors.append(_error(("features",), f"invalid JSON: {exc}", "value_error.json"))
        else:
            if not isinstance(features, dict | list):
                errors.append(
                    _error(
                        ("features",),
                        "features must be a JSON object keyed by feature name or a list",
                        "type_error.features",
                    )
                )
    request_id = event.fields.get("request_id")
    problem = request_id_problem(request_id) if request_id is not None else None
    if problem is not None:  # the same rule as the HTTP API's
        errors.append(_error(("request_id",), f"request_id {problem}", "value_error.request_id"))
    return features, request_id, errors
