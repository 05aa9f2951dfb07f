"""The small protocols streaming detectors share, and how their state survives a restart.

A streaming detector is fed one value at a time (an error bit, a score, a feature value) and
says after each update whether it has just seen a change:

* :class:`DriftDetector` -- ``update(x)``, the ``drift_detected`` property and ``reset()``.
  The update that follows a drift starts the detector afresh.
* :class:`WarningDetector` -- a second, separate protocol for detectors that also raise an
  early warning (DDM, HDDM).
* :class:`DirectionalDetector` -- detectors that can say whether the monitored mean went
  ``"up"`` or ``"down"``; on an error stream only "up" is a degradation.
* :class:`Checkpointable` -- ``get_state()`` returns a JSON-safe dict and ``set_state()``
  puts it back, so a monitor restarted from the store raises the same future alarms as the
  one that never stopped.

The algorithms are river's. :class:`RiverDetector` is the thin base of our wrappers: the
wrapper's keyword arguments are its configuration, it builds the river detector from them and
it checkpoints that detector.

How state is checkpointed, and why not pickle
---------------------------------------------
Three ways were weighed. *Replaying* the inputs since the last reset is exact but unbounded
(ADWIN's window can hold the whole history). *Pickle inside the JSON* is exact and short, but
loading a pickle runs whatever code it names, and these checkpoints live in a database that
more people can write to than can deploy code. We therefore encode the river detector's
attributes into tagged JSON with a closed vocabulary: numbers (non-finite floats tagged),
strings, lists, tuples, dicts, deques, ``random.Random`` state, instances of an explicit
allowlist of river helper classes, and river's Rust-backed helpers (ADWIN's window,
``EWMean``) through the byte state their own ``__getstate__`` produces (base64). Restoring
builds a fresh detector from the configuration and assigns the decoded attributes, so floats
come back bit for bit (JSON floats are written with ``repr``) and future alarms are
identical. Nothing outside the allowlist is ever instantiated.

The encoding knows river's private attribute layout, so it is tied to one river version: a
state records ``river.__version__`` and the attribute names, and :meth:`RiverDetector.set_state`
refuses (with :class:`~driftline.errors.DataError`) a state from another river version, another
detector or another configuration, rather than restoring it approximately. A caller then
starts a fresh detector, which only costs a warm-up.
"""

from __future__ import annotations

import base64
import collections
import inspect
import math
import random
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import river
from river import stats as river_stats
from river._river_rust.drift import AdaptiveWindowing
from river._river_rust.stats import RsEWMean
from river.drift.binary.hddm_w import SampleInfo

from driftline.errors import DataError
from driftline.params import check_choice, check_integer, check_real

__all__ = [
    "RIVER_VERSION",
    "STATE_FORMAT",
    "Checkpointable",
    "Direction",
    "DirectionalDetector",
    "DriftDetector",
    "RiverDetector",
    "WarningDetector",
    "check_choice",
    "check_integer",
    "check_real",
    "decode_state",
    "encode_state",
]

#: The river release whose private attribute layout the checkpoints encode.
RIVER_VERSION: str = str(vars(river)["__version__"])

#: Version of the checkpoint layout written by :meth:`RiverDetector.get_state`.
STATE_FORMAT = 1

#: Which way the monitored mean moved when a drift was detected.
Direction = Literal["up", "down"]


@runtime_checkable
class DriftDetector(Protocol):
    """Fed one value at a time; says whether the last update revealed a change."""

    def update(self, x: float) -> None:
        """Take one value. If the previous update detected a drift, start afresh first."""
        ...

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a drift."""
        ...

    def reset(self) -> None:
        """Forget everything seen; the detector then equals a freshly built one."""
        ...


@runtime_checkable
class WarningDetector(Protocol):
    """A detector that also raises an early warning before it declares a drift."""

    @property
    def warning_detected(self) -> bool:
        """Whether the last update entered the warning zone."""
        ...


@runtime_checkable
class DirectionalDetector(Protocol):
    """A detector that says which way the monitored mean moved at a drift."""

    @property
    def direction(self) -> Direction | None:
        """``"up"`` or ``"down"`` after an update that detected a drift, else ``None``."""
        ...


@runtime_checkable
class Checkpointable(Protocol):
    """State that can be written as JSON and read back exactly."""

    def get_state(self) -> dict[str, Any]:
        """A JSON-safe snapshot."""
        ...

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Become exactly the object the snapshot was taken from."""
        ...


# --- the state codec ----------------------------------------------------------------------------

# Plain-Python helper classes of river detectors that may be rebuilt from a checkpoint.
_PY_CLASSES: dict[str, type] = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (river_stats.Mean, river_stats.EWMean, SampleInfo)
}
# Rust-backed river helpers: rebuilt from their constructor arguments and their own byte state.
_RUST_CLASSES: dict[str, type] = {
    f"{cls.__module__}.{cls.__qualname__}": cls for cls in (AdaptiveWindowing, RsEWMean)
}


def _qualname(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def encode_state(value: object) -> Any:
    """Encode ``value`` as JSON-safe data in the closed vocabulary described in the module.

    >>> encode_state({"n": 3, "low": float("-inf"), "seen": (1, 2)})
    {'$dict': {'n': 3, 'low': {'$float': '-inf'}, 'seen': {'$tuple': [1, 2]}}}
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int) and type(value) is int:
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, np.generic):
        return {"$numpy": value.dtype.str, "value": encode_state(value.item())}
    if type(value) is list:
        return [encode_state(v) for v in value]
    if type(value) is tuple:
        return {"$tuple": [encode_state(v) for v in value]}
    if type(value) is dict:
        if not all(isinstance(k, str) for k in value):
            raise DataError("cannot checkpoint a dict with non-string keys")
        return {"$dict": {k: encode_state(v) for k, v in value.items()}}
    if type(value) is collections.deque:
        return {"$deque": [encode_state(v) for v in value], "maxlen": value.maxlen}
    if type(value) is random.Random:
        return {"$random": encode_state(value.getstate())}
    name = _qualname(value)
    if name in _RUST_CLASSES:
        rust: Any = value
        return {
            "$rust": name,
            "args": encode_state(tuple(rust.__getnewargs__())),
            "bytes": base64.b64encode(bytes(rust.__getstate__())).decode("ascii"),
        }
    if name in _PY_CLASSES:
        return {"$object": name, "attrs": encode_state(dict(vars(value)))}
    raise DataError(f"cannot checkpoint a value of type {name}")


def decode_state(data: Any) -> Any:
    """Invert :func:`encode_state`; only the allowlisted classes are ever instantiated.

    >>> decode_state(encode_state({"low": float("-inf"), "seen": (1, 2)}))
    {'low': -inf, 'seen': (1, 2)}
    """
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode_state(v) for v in data]
    if not isinstance(data, dict) or len(data) == 0:
        raise DataError(f"not a checkpoint value: {data!r}")
    tag = next(iter(data))
    if tag == "$float":
        return float(data["$float"])
    if tag == "$numpy":
        return np.dtype(str(data["$numpy"])).type(decode_state(data["value"]))
    if tag == "$tuple":
        return tuple(decode_state(v) for v in data["$tuple"])
    if tag == "$dict":
        return {str(k): decode_state(v) for k, v in data["$dict"].items()}
    if tag == "$deque":
        return collections.deque(
            (decode_state(v) for v in data["$deque"]), maxlen=data["maxlen"]
        )
    if tag == "$random":
        rng = random.Random()
        rng.setstate(decode_state(data["$random"]))
        return rng
    if tag == "$rust":
        cls = _RUST_CLASSES.get(str(data["$rust"]))
        if cls is None:
            raise DataError(f"checkpoint names a class outside the allowlist: {data['$rust']}")
        obj: Any = cls.__new__(cls, *decode_state(data["args"]))
        obj.__setstate__(base64.b64decode(data["bytes"]))
        return obj
    if tag == "$object":
        cls = _PY_CLASSES.get(str(data["$object"]))
        if cls is None:
            raise DataError(f"checkpoint names a class outside the allowlist: {data['$object']}")
        instance: Any = object.__new__(cls)
        instance.__dict__.update(decode_state(data["attrs"]))
        return instance
    raise DataError(f"unknown checkpoint tag {tag!r}")


# --- the wrapper base ---------------------------------------------------------------------------


class RiverDetector:
    """Base of the wrappers around river's detectors.

    A subclass takes its configuration as keyword arguments, validates them, stores each under
    its own name, calls ``super().__init__()`` and implements :meth:`_build` (the river
    detector for that configuration). :meth:`get_params`, ``repr``, :meth:`reset` and the
    checkpoint come from here. Attributes of the wrapper whose names start with one
    underscore (other than ``_detector``) are wrapper state and are checkpointed too.
    """

    def __init__(self) -> None:
        self._detector: Any = self._build()

    def _build(self) -> Any:
        """The river detector for this configuration."""
        raise NotImplementedError

    # configuration

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values() if p.name != "self"]

    def get_params(self) -> dict[str, Any]:
        """The configuration: the constructor's keyword arguments and their values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # the DriftDetector protocol

    def update(self, x: float) -> None:
        """Take one value (see the class docstring for what it means)."""
        self._detector.update(x)

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a drift."""
        return bool(self._detector.drift_detected)

    def reset(self) -> None:
        """Forget everything: the detector equals a freshly constructed one."""
        type(self).__init__(self, **self.get_params())

    # checkpoints

    def _wrapper_state(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in vars(self).items()
            if k.startswith("_") and not k.startswith("__") and k != "_detector"
        }

    def get_state(self) -> dict[str, Any]:
        """A JSON-safe snapshot of the configuration and of everything the detector holds.

        Bound methods river keeps as attributes (Page-Hinkley's choice of test) are not
        stored: they follow from the configuration and are rebuilt with the detector.
        """
        river_attrs = {
            k: v for k, v in vars(self._detector).items() if not inspect.ismethod(v)
        }
        return {
            "format": STATE_FORMAT,
            "detector": type(self).__name__,
            "river_version": RIVER_VERSION,
            "params": encode_state(self.get_params()),
            "wrapper": encode_state(self._wrapper_state()),
            "river": encode_state(river_attrs),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Become exactly the detector the snapshot was taken from.

        Raises :class:`~driftline.errors.DataError` when the snapshot comes from another
        detector class, configuration, checkpoint format or river version.
        """
        if state.get("format") != STATE_FORMAT:
            raise DataError(
                f"checkpoint format {state.get('format')!r} is not {STATE_FORMAT}"
            )
        if state.get("detector") != type(self).__name__:
            raise DataError(
                f"checkpoint of {state.get('detector')!r} cannot restore {type(self).__name__}"
            )
        if state.get("river_version") != RIVER_VERSION:
            raise DataError(
                f"checkpoint was written with river {state.get('river_version')}, this process "
                f"runs river {RIVER_VERSION}; start a fresh detector"
            )
        if state.get("params") != encode_state(self.get_params()):
            raise DataError(
                f"checkpoint configuration {decode_state(state.get('params'))!r} differs from "
                f"{self.get_params()!r}"
            )
        fresh = self._build()
        expected = {k for k, v in vars(fresh).items() if not inspect.ismethod(v)}
        attrs = decode_state(state["river"])
        wrapper = decode_state(state["wrapper"])
        if set(attrs) != expected or set(wrapper) != set(self._wrapper_state()):
            raise DataError("checkpoint attributes do not match this detector; start afresh")
        for key, value in attrs.items():
            setattr(fresh, key, value)
        for key, value in wrapper.items():
            setattr(self, key, value)
        self._detector = fresh
