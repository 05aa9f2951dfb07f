"""What every way in refuses: text no store can hold, and how much of a bad value an error repeats.

The HTTP API, the stream consumer and the logs apply these same rules, so a record that passes
the edge can always be written (PostgreSQL refuses NUL characters and lone surrogates; the
columns have lengths) and a client's text can never forge a log line or a response header.

>>> request_id_problem("flow-42") is None
True
>>> request_id_problem("a\\r\\nb")
'must be 1 to 128 visible ASCII characters (no spaces or control characters); got U+000D at 1'
>>> text_problem("RENT", max_length=MAX_TEXT_LENGTH) is None
True
>>> text_problem("a\\x00b", max_length=MAX_TEXT_LENGTH)
'contains the control character U+0000 at 1'
>>> label_problem(float("nan"))
'must be a finite number, got nan'
>>> echo("x" * 100)
'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…'
>>> escape_control("GET /a\\r\\nforged")
'GET /a\\\\r\\\\nforged'
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any

__all__ = [
    "ECHO_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_ROW_ID",
    "MAX_TEXT_LENGTH",
    "MAX_VERSION",
    "NAME_ECHO_LENGTH",
    "echo",
    "escape_control",
    "label_problem",
    "request_id_problem",
    "text_problem",
    "valid_request_id",
]

#: Longest request id (``predictions.request_id`` and ``labels.request_id`` hold 128).
MAX_REQUEST_ID_LENGTH = 128
#: Longest label, as text (``labels.label`` and ``predictions.prediction`` hold 256).
MAX_LABEL_LENGTH = 256
#: Longest string value of a categorical feature.
MAX_TEXT_LENGTH = 1_024
#: Longest reason given to an admin action (promote, rollback, abort).
MAX_REASON_LENGTH = 500
#: Largest version number (an ``INTEGER`` column: 32 bits).
MAX_VERSION = 2**31 - 1
#: Largest row id or offset (a ``BIGINT``: 64 bits).
MAX_ROW_ID = 2**63 - 1
#: Most characters of a bad value that an error message repeats.
ECHO_LENGTH = 40
#: Most characters of a client's field name (``loc``) that an error repeats.
NAME_ECHO_LENGTH = 128

# C0 and C1 control characters (NUL, CR, LF, TAB, ESC, DEL, ...) and lone UTF-16 surrogates,
# which have no UTF-8 encoding (PostgreSQL and SQLite cannot store them).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_VISIBLE_ASCII = re.compile(r"[^!-~]")
_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def valid_request_id(value: str) -> bool:
    """Whether ``value`` can be a request id: 1 to 128 visible ASCII characters (``!`` to
    ``~``: no spaces, no control characters), safe in a header, a log line and every store.

    >>> valid_request_id("flow-42"), valid_request_id(""), valid_request_id("a b")
    (True, False, False)
    """
    return 0 < len(value) <= MAX_REQUEST_ID_LENGTH and _NOT_VISIBLE_ASCII.search(value) is None


def request_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a request id, or ``None`` when it can."""
    if valid_request_id(value):
        return None
    rule = (
        f"must be 1 to {MAX_REQUEST_ID_LENGTH} visible ASCII characters "
        "(no spaces or control characters)"
    )
    if not value:
        return f"{rule}; got an empty string"
    if len(value) > MAX_REQUEST_ID_LENGTH:
        return f"{rule}; got {len(value)} characters"
    bad = _NOT_VISIBLE_ASCII.search(value)
    assert bad is not None
    return f"{rule}; got U+{ord(bad.group()):04X} at {bad.start()}"


def text_problem(value: str, *, max_length: int) -> str | None:
    """Why ``value`` cannot be stored as text (too long, a control character or a lone
    surrogate), or ``None`` when it can."""
    if len(value) > max_length:
        return f"longer than {max_length} characters ({len(value)})"
    bad = _UNSAFE.search(value)
    if bad is None:
        return None
    what = "a lone surrogate" if bad.group() >= "\ud800" else "the control character"
    return f"contains {what} U+{ord(bad.group()):04X} at {bad.start()}"


def label_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a label (a class): NaN or infinity, text that cannot be
    stored, or longer than 256 characters as text; ``None`` when it can."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"must be a finite number, got {value}"
    if isinstance(value, int):
        digits = len(str(abs(value)))  # Python refuses ints of over 4,300 digits before this
        if digits > MAX_LABEL_LENGTH - 1:
            return f"longer than {MAX_LABEL_LENGTH} characters as text ({digits} digits)"
        return None
    if isinstance(value, str):
        return text_problem(value, max_length=MAX_LABEL_LENGTH)
    return f"must be a string, a number or a boolean, got {type(value).__name__}"


def echo(value: Any, limit: int = ECHO_LENGTH) -> Any:
    """What an error may repeat of a bad value: JSON-safe (no NaN, no lone surrogate) and at
    most ``limit`` characters of it (``…`` marks a cut)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**limit else f"{str(value)[:limit]}…"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else reprlib.repr(value)  # bounded for containers
    short = text[:limit] + ("…" if len(text) > limit else "")
    return short.encode("utf-8", "backslashreplace").decode("utf-8")


def escape_control(text: str) -> str:
    """``text`` with control characters and lone surrogates written as escapes (``\\r``,
    ``\\n``, ``\\x00``...), so it stays on one log line and can be encoded."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: _ESCAPES.get(m.group()) or _escape(ord(m.group())), text)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
