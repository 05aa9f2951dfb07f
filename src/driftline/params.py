"""Checks of constructor parameters: the message names the parameter, the allowed range and the
value got (STYLE habit 5). Light on purpose: the statistical core uses them without river."""

from __future__ import annotations

import math
import numbers

from driftline.errors import ConfigurationError

__all__ = ["check_choice", "check_integer", "check_real"]


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a real number within the bounds, else ConfigurationError.

    >>> check_real("delta", 0.5, low=0.0, high=1.0, low_open=True, high_open=True)
    0.5
    >>> check_real("delta", 2, low=0.0, high=1.0, low_open=True, high_open=True)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: delta must be a real number in (0.0, 1.0); got 2
    """
    lo = "-inf" if low is None else repr(float(low))
    hi = "inf" if high is None else repr(float(high))
    opening = "(" if low_open or low is None else "["
    closing = ")" if high_open or high is None else "]"
    allowed = f"{opening}{lo}, {hi}{closing}"
    message = f"{name} must be a real number in {allowed}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(message)
    number = float(value)
    if math.isnan(number):
        raise ConfigurationError(message)
    if low is not None and (number < low or (low_open and number == low)):
        raise ConfigurationError(message)
    if high is not None and (number > high or (high_open and number == high)):
        raise ConfigurationError(message)
    return number


def check_integer(name: str, value: object, *, low: int = 0, high: int | None = None) -> int:
    """``value`` if it is an integer in ``[low, high]``, else ConfigurationError.

    >>> check_integer("clock", 32, low=1)
    32
    >>> check_integer("clock", 0, low=1)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: clock must be an integer in [1, inf); got 0
    """
    allowed = f"[{low}, {'inf)' if high is None else f'{high}]'}"
    message = f"{name} must be an integer in {allowed}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(message)
    if int(value) < low or (high is not None and int(value) > high):
        raise ConfigurationError(message)
    return int(value)


def check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    """ConfigurationError unless ``value`` is one of ``choices``.

    >>> check_choice("mode", "sideways", ("up", "down", "both"))
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: mode must be one of ('up', 'down', 'both'); got 'sideways'
    """
    if not any(type(value) is type(c) and value == c for c in choices):
        raise ConfigurationError(f"{name} must be one of {choices!r}; got {value!r}")
