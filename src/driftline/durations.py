"""Durations as people write them, the one grammar of every command, setting and query.

``90`` (seconds), ``500ms``, ``20s``, ``1.5m``, ``6h``, ``2d``, ``1w``: a non-negative number
with an optional unit. The error names where the value came from.
"""

from __future__ import annotations

import math
import re
from typing import Final

from driftline.errors import ConfigurationError

__all__ = ["UNITS", "parse_duration"]

#: Seconds per unit.
UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*")


def parse_duration(
    value: str | float, where: str = "duration", *, allow_zero: bool = False
) -> float:
    """Seconds in ``value``: a number of seconds, or a string with an optional unit.

    >>> [parse_duration(v) for v in ("90", "500ms", "20s", "1.5m", "6h", "2d", "1w", 30)]
    [90.0, 0.5, 20.0, 90.0, 21600.0, 172800.0, 604800.0, 30.0]
    >>> parse_duration(0, "manager.group_wait", allow_zero=True)
    0.0
    >>> parse_duration("soon", "--window")
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: --window must be a duration: seconds, or a number with \
a unit ms, s, m, h, d or w (e.g. 30s, 15m, 6h); got 'soon'
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION.fullmatch(value)
        if found is not None:
            seconds = float(found.group(1)) * UNITS[found.group(2) or "s"]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(
            f"{where} must be a duration: seconds, or a number with a unit ms, s, m, h, d or w "
            f"(e.g. 30s, 15m, 6h); got {value!r}"
        )
    if seconds == 0 and not allow_zero:
        raise ConfigurationError(f"{where} must be a positive duration; got {value!r}")
    return seconds
