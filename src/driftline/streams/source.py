"""What a stream consumer needs from a message broker, and the event format.

A :class:`StreamSource` is one member of a consumer group on one input stream. The consumer
calls it in this order for each batch: :meth:`~StreamSource.claim_stale` or
:meth:`~StreamSource.read`, then :meth:`~StreamSource.dead_letter` and
:meth:`~StreamSource.publish`, then :meth:`~StreamSource.ack`. Anything read and not acked
stays pending in the broker and is delivered again (to this consumer after a restart under the
same name, or to another one once it has been idle long enough): delivery is at-least-once.

Redis Streams implement it (:class:`~driftline.streams.redis_source.RedisStreamSource`). A
Kafka source could too (a batch is a poll, ack a commit of offsets, claiming what the group
rebalance does), but none ships: no broker can run where driftline is tested.

An event carries a field ``features`` holding JSON (an object keyed by feature name, or a list
in schema order) and, optionally, ``request_id``:

>>> fields = encode_event({"age": 35, "income": float("nan")}, request_id="flow-42")
>>> fields
{'features': '{"age": 35, "income": null}', 'request_id': 'flow-42'}
>>> decode_event(StreamEvent("1-0", fields))
({'age': 35, 'income': None}, 'flow-42', [])
>>> decode_event(StreamEvent("2-0", {"features": "{oops"}))[2][0]["type"]
'value_error.json'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from driftline.errors import DriftlineError
from driftline.limits import MAX_REQUEST_ID_LENGTH, request_id_problem

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "StreamError",
    "StreamEvent",
    "StreamSource",
    "decode_event",
    "encode_event",
]

class StreamError(DriftlineError):
    """The stream broker failed an operation (unreachable, refused a command)."""


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

    def read(self, count: int, block_ms: int) -> list[StreamEvent]:
        """At most ``count`` events for this consumer, waiting up to ``block_ms`` when none is
        ready. Events this consumer read earlier and never acked (say, before a crash under the
        same name) come first; then new ones."""
        ...

    def claim_stale(self, count: int) -> list[StreamEvent]:
        """Take over at most ``count`` events that another consumer read but has not acked for
        longer than the claim idle time (it died or hangs); they become this consumer's."""
        ...

    def rewind(self) -> None:
        """Make the next :meth:`read` start again with everything this consumer read and has
        not acked (after a batch failed half-way)."""
        ...

    def ack(self, ids: Sequence[str]) -> None:
        """Mark events done for the group: they are never delivered again."""
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
