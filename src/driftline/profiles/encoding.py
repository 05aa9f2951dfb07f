"""How profile arrays are written down: hex-encoded little-endian bytes (profile format 2).

Shared by every profile's ``to_dict``/``from_dict`` and by the merge of stored profiles
(:func:`~driftline.profiles.stored.merge_payloads`), which decodes one field of many stored
profiles at once (:func:`decode_rows`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from driftline.errors import DataError

__all__ = [
    "FORMAT_VERSION",
    "READABLE_FORMATS",
    "FloatArray",
    "IntArray",
    "UnusualPayloadError",
    "decode",
    "decode_rows",
    "encode",
    "float_or",
    "opt_float",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]

#: Profile format written by :meth:`DatasetProfile.to_dict`. Format 2 writes numeric arrays
#: (edges, counts, sums, reservoir samples and keys) as hex-encoded little-endian bytes; format 1
#: (JSON lists) is still read.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
_LITTLE_ENDIAN = sys.byteorder == "little"


def opt_float(value: float) -> float | None:
    """A float as JSON allows it: non-finite (the extremes of an empty profile) as ``None``."""
    return value if math.isfinite(value) else None


def float_or(value: Any, default: float) -> float:
    """Inverse of :func:`opt_float`, ``None`` read as ``default``."""
    return default if value is None else float(value)


def encode(values: npt.NDArray[Any], dtype: str) -> str:
    """An array as the hex digits of its little-endian ``dtype`` bytes (profile format 2).

    Exact, and several times faster to read back than a JSON list of numbers (CPython's hex
    decoder is also several times faster than its base64 one, which outweighs the longer
    text): a window check reads every stored bucket of the window.
    """
    return np.ascontiguousarray(values, dtype=dtype).tobytes().hex()


def decode(data: Any, dtype: str, what: str) -> npt.NDArray[Any]:
    """Inverse of :func:`encode`; a JSON list (profile format 1) is read as well."""
    if not isinstance(data, str):
        return np.asarray(data, dtype=dtype).astype(dtype[1:])
    if not data:  # e.g. the sample of a window bucket, which keeps none
        return np.zeros(0, dtype=dtype[1:])
    try:
        raw = bytearray.fromhex(data)  # writable, so the array needs no copy
    except ValueError as exc:
        raise DataError(f"profile field {what} is not hex-encoded {dtype}: {exc}") from None
    if len(raw) % 8:
        raise DataError(f"profile field {what} holds {len(raw)} bytes, not {dtype} values")
    values = np.frombuffer(raw, dtype=dtype)
    return values if _LITTLE_ENDIAN else values.astype(dtype[1:])


class UnusualPayloadError(Exception):
    """Stored payloads the direct merge does not handle (the general path decides)."""


def decode_rows(
    specs: Sequence[Mapping[str, Any]], key: str, dtype: str, width: int
) -> npt.NDArray[Any]:
    """Field ``key`` of every spec as a (specs x width) array, decoded
    in one ``fromhex`` over the joined strings; each must hold ``width`` hex-encoded ``dtype``
    values, else :class:`UnusualPayloadError`."""
    texts = [spec[key] for spec in specs]
    chars = 16 * width
    for text in texts:
        if type(text) is not str or len(text) != chars:
            raise UnusualPayloadError
    raw = bytearray.fromhex("".join(texts))
    if len(raw) != 8 * width * len(texts):
        raise UnusualPayloadError
    values = np.frombuffer(raw, dtype=dtype).reshape(len(texts), width)
    return values if _LITTLE_ENDIAN else values.astype(dtype[1:])
