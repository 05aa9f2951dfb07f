"""Reference and window profiles: binned, mergeable summaries of feature values.

A profile turns rows into a few numbers per feature so that drift checks cost O(bins), not
O(rows). The reference profile is built once from training data and fixes the bins: numeric
features get inner edges at reference quantiles (the two ends stay open), categorical features
get the reference categories plus one ``unseen`` bucket. Live traffic is binned into the *same*
bins in small time buckets; buckets of the same reference add up, across time and across API
workers, with :meth:`DatasetProfile.merge`.

What merges how:

* bin counts, missing counts, out-of-range counts: integer addition (exact, associative and
  commutative);
* per-bin sums, mean and ``m2`` (Welford, merged with Chan's formula): floating addition (exact
  up to rounding);
* the reservoir sample: every value gets a uniform random key and a profile keeps the
  ``sample_size`` values with the smallest keys (bottom-k sampling). The union keeps the smallest
  keys of both sides, so a merged sample is a uniform sample of all merged rows, each side
  weighted by its size -- exact, associative and commutative;
* the unseen-category tally: a Misra-Gries summary (exact while there are at most
  ``unseen_capacity`` distinct unseen names; past that every count is an under-estimate by at
  most ``unseen / (unseen_capacity + 1)``).

Non-finite numbers and ``None``/NaN are *missing*. ``boolean`` features are profiled as numeric
0/1 (that is how :meth:`FeatureSchema.to_frame` hands them to the model).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.errors import DataError
from driftline.schema import FeatureSchema

__all__ = [
    "CategoricalProfile",
    "DatasetProfile",
    "FeatureProfile",
    "NumericProfile",
    "build_output_profile",
    "build_reference_profile",
    "category_counts",
    "merge_all",
    "merge_payloads",
    "output_columns",
    "profile_columns",
    "reference_bins",
    "reference_profile",
    "value_counts",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]

#: Profile format written by :meth:`DatasetProfile.to_dict`. Format 2 writes numeric arrays
#: (edges, counts, sums, reservoir samples and keys) as hex-encoded little-endian bytes; format 1
#: (JSON lists) is still read.
FORMAT_VERSION = 2
_READABLE_FORMATS = (1, 2)
_LITTLE_ENDIAN = sys.byteorder == "little"
#: Default number of quantile bins of a numeric feature.
DEFAULT_BINS = 20
#: Default capacity of the reservoir sample of a numeric feature.
DEFAULT_SAMPLE_SIZE = 256
#: Default number of categories kept per categorical feature (as :mod:`driftline.schema`).
DEFAULT_MAX_CATEGORIES = 1_000
#: Default number of unseen category names tallied per categorical feature.
DEFAULT_UNSEEN_CAPACITY = 20
#: Output profile feature names.
PREDICTION = "prediction"
SCORE = "score"

# Batches with at most this many (rows x numeric features x edges) comparisons are binned in
# one broadcast comparison; bigger ones column by column (:func:`_bin_index`).
_BROADCAST_LIMIT = 40_000
# Up to this many edges, large batches are binned by comparing with each edge in turn.
_SCAN_EDGES = 64
# Rows compared with every edge before moving on: a block and its flags stay in the CPU cache
# (64k float64 = 512 KiB), so the values are read from memory once, not once per edge.
_SCAN_BLOCK = 1 << 16
# Batches up to this many rows map categories with a dict; bigger ones with ``pd.factorize``.
_SMALL_CATEGORICAL = 64
# Frames up to this many rows are converted to one object block in :meth:`add_frame`.
_SMALL_FRAME = 64


def _empty_float() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _opt_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float_or(value: Any, default: float) -> float:
    return default if value is None else float(value)


def _bin_index(edges: FloatArray, values: FloatArray) -> npt.NDArray[np.integer[Any]]:
    """Bin of each value: the number of edges at or below it (``searchsorted(side="right")``).

    For a few dozen edges, comparing with each edge in turn is several times faster than
    ``np.searchsorted`` (a binary search per value, with unpredictable branches), and doing it
    block by block over cache-sized slices several times faster again than whole-array passes
    (which read the values from memory once per edge). ``values`` hold no NaN (the callers
    bin present values only).
    """
    n = len(values)
    if len(edges) > _SCAN_EDGES or n < 1024:
        return np.searchsorted(edges, values, side="right")
    idx = np.zeros(n, dtype=np.uint8)
    flags = np.empty(min(n, _SCAN_BLOCK), dtype=bool)
    ones = flags.view(np.uint8)
    thresholds = edges.tolist()
    for start in range(0, n, _SCAN_BLOCK):
        block = values[start : start + _SCAN_BLOCK]
        out = idx[start : start + _SCAN_BLOCK]
        above, counted = flags[: len(block)], ones[: len(block)]
        for edge in thresholds:
            np.greater_equal(block, edge, out=above)
            np.add(out, counted, out=out)
    return idx


def _encode(values: npt.NDArray[Any], dtype: str) -> str:
    """An array as the hex digits of its little-endian ``dtype`` bytes (profile format 2).

    Exact, and several times faster to read back than a JSON list of numbers (CPython's hex
    decoder is also several times faster than its base64 one, which outweighs the longer
    text): a window check reads every stored bucket of the window.
    """
    return np.ascontiguousarray(values, dtype=dtype).tobytes().hex()


def _decode(data: Any, dtype: str, what: str) -> npt.NDArray[Any]:
    """Inverse of :func:`_encode`; a JSON list (profile format 1) is read as well."""
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


def _bottom_k(values: FloatArray, keys: FloatArray, capacity: int) -> tuple[FloatArray, FloatArray]:
    """The ``capacity`` smallest (key, value) pairs, sorted by (key, value)."""
    if capacity <= 0:
        return _empty_float(), _empty_float()
    if len(keys) > 2 * capacity:
        # Only pairs whose key is at most the capacity-th smallest can be kept.
        cut = np.partition(keys, capacity - 1)[capacity - 1]
        near = keys <= cut
        values, keys = values[near], keys[near]
    order = np.lexsort((values, keys))[:capacity]
    return values[order], keys[order]


def _same_edges(a: FloatArray, b: FloatArray) -> bool:
    return a is b or (a.shape == b.shape and a.tobytes() == b.tobytes()) or np.array_equal(a, b)


def _merge_samples(
    values_a: FloatArray,
    keys_a: FloatArray,
    values_b: FloatArray,
    keys_b: FloatArray,
    capacity: int,
) -> tuple[FloatArray, FloatArray]:
    """Bottom-``capacity`` union of two keyed samples, sorted by (key, value)."""
    values = np.concatenate([values_a, values_b])
    keys = np.concatenate([keys_a, keys_b])
    order = np.lexsort((values, keys))[:capacity]
    return values[order], keys[order]


def _merge_tallies(a: Mapping[str, int], b: Mapping[str, int], capacity: int) -> dict[str, int]:
    """Merge two Misra-Gries summaries (Agarwal et al. 2012) keeping ``capacity`` counters."""
    if not b and len(a) <= capacity:
        return dict(sorted(a.items()))
    total: Counter[str] = Counter(a)
    total.update(b)
    if len(total) <= capacity:
        return dict(sorted(total.items()))
    cut = sorted(total.values(), reverse=True)[capacity]
    return dict(sorted((k, v - cut) for k, v in total.items() if v > cut))


# --- numeric --------------------------------------------------------------------------------


def _check_bins(edges: FloatArray, sample_size: int) -> None:
    if edges.ndim != 1 or not np.isfinite(edges).all() or not (edges[1:] > edges[:-1]).all():
        raise DataError("edges must be a 1-D array of finite, strictly increasing numbers")
    if sample_size < 0:
        raise DataError(f"sample_size must be >= 0, got {sample_size}")


@dataclass(eq=False)
class NumericProfile:
    """Binned summary of a numeric feature.

    Bins are ``(-inf, edges[0])``, ``[edges[0], edges[1])``, ..., ``[edges[-1], inf)``: a value
    equal to an edge falls in the bin to its right. ``counts`` and ``sums`` hold one entry per
    bin (``len(edges) + 1``).

    Parameters
    ----------
    edges
        Strictly increasing inner edges.
    counts
        Number of present values per bin.
    sums
        Sum of the present values per bin (bin centroids are ``sums / counts``).
    reference_minimum, reference_maximum
        Range of the reference data; values outside it are counted in ``below_reference`` and
        ``above_reference``.
    missing
        Number of missing (None, NaN, +-inf) values.
    count
        Number of present values.
    minimum, maximum, mean, m2
        Running minimum, maximum, mean and sum of squared deviations (Welford; merged with
        Chan's formula). ``minimum``/``maximum`` are +-inf while ``count`` is 0.
    sample, sample_keys, sample_size
        Bottom-k reservoir: the ``sample_size`` values with the smallest random keys, sorted by
        key.

    Example
    -------
    >>> p = NumericProfile.empty(np.array([0.0, 1.0]), reference_minimum=-1.0,
    ...                          reference_maximum=2.0)
    >>> p.add(np.array([-2.0, 0.5, 0.5, 1.0, np.nan]), np.random.default_rng(0))
    >>> p.counts.tolist(), p.missing, p.count, p.below_reference, round(p.mean, 3)
    ([1, 2, 1], 1, 4, 1, 0.0)

    References
    ----------
    Chan, Golub and LeVeque (1979), "Updating formulae and a pairwise algorithm for computing
    sample variances". Efraimidis and Spirakis (2006), "Weighted random sampling with a
    reservoir", Information Processing Letters 97(5).
    """

    kind: ClassVar[Literal["numeric"]] = "numeric"

    edges: FloatArray
    counts: IntArray
    sums: FloatArray
    reference_minimum: float | None = None
    reference_maximum: float | None = None
    missing: int = 0
    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    mean: float = 0.0
    m2: float = 0.0
    below_reference: int = 0
    above_reference: int = 0
    sample: FloatArray = field(default_factory=_empty_float)
    sample_keys: FloatArray = field(default_factory=_empty_float)
    sample_size: int = DEFAULT_SAMPLE_SIZE

    @classmethod
    def empty(
        cls,
        edges: npt.ArrayLike,
        *,
        reference_minimum: float | None = None,
        reference_maximum: float | None = None,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
    ) -> NumericProfile:
        """A profile with the given bins and nothing counted yet."""
        e = np.asarray(edges, dtype=np.float64)
        _check_bins(e, sample_size)
        return cls(
            edges=e,
            counts=np.zeros(len(e) + 1, dtype=np.int64),
            sums=np.zeros(len(e) + 1, dtype=np.float64),
            reference_minimum=reference_minimum,
            reference_maximum=reference_maximum,
            sample_size=sample_size,
        )

    # --- derived ----------------------------------------------------------------------------

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def total(self) -> int:
        """Rows seen, present or missing."""
        return self.count + self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.total if self.total else 0.0

    @property
    def variance(self) -> float:
        """Sample variance (``ddof=1``); 0 with fewer than two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(max(self.variance, 0.0))

    def centroids(self) -> FloatArray:
        """Mean value per bin (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)

    # --- updates ----------------------------------------------------------------------------

    def add(self, values: npt.ArrayLike, rng: np.random.Generator) -> None:
        """Count a batch of values in place (``rng`` draws the reservoir keys)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(x)
        present = x if finite.all() else x[finite]
        self.missing += int(len(x) - len(present))
        n = len(present)
        if n == 0:
            return
        if n <= _SCAN_BLOCK or len(self.edges) > _SCAN_EDGES:
            self._count(present)
        else:
            # Block by block, so that every step reads a block the previous one left in the
            # CPU cache: the values come from memory once. Moments merge as for batches.
            for start in range(0, n, _SCAN_BLOCK):
                self._count(present[start : start + _SCAN_BLOCK])
        self._sample_batch(present, rng)

    def _add_sorted(
        self, ordered: FloatArray, present: FloatArray, missing: int, rng: np.random.Generator
    ) -> None:
        """Count present values given sorted (``ordered``) and in row order (``present``, for
        the reservoir), plus ``missing`` missing ones: bins and sums from the positions of the
        edges among the sorted values, no pass binning each value."""
        self.missing += missing
        n = len(ordered)
        if n == 0:
            return
        k = len(self.counts)
        bounds = np.concatenate([[0], np.searchsorted(ordered, self.edges, side="left"), [n]])
        counts = np.diff(bounds)
        sums = np.zeros(k)
        filled = counts > 0
        sums[filled] = np.add.reduceat(ordered, bounds[:-1][filled])
        self.counts += counts
        self.sums += sums
        if self.reference_minimum is not None:
            self.below_reference += int(
                np.searchsorted(ordered, self.reference_minimum, side="left")
            )
        if self.reference_maximum is not None:
            self.above_reference += n - int(
                np.searchsorted(ordered, self.reference_maximum, side="right")
            )
        mean = float(ordered.mean())
        m2 = 0.0
        buffer = np.empty(min(n, _SCAN_BLOCK))
        for start in range(0, n, _SCAN_BLOCK):
            block = ordered[start : start + _SCAN_BLOCK]
            dev = buffer[: len(block)]
            np.subtract(block, mean, out=dev)
            np.square(dev, out=dev)
            m2 += float(dev.sum())
        self._merge_moments(n, mean, m2)
        self.minimum = min(self.minimum, float(ordered[0]))
        self.maximum = max(self.maximum, float(ordered[-1]))
        self._sample_batch(present, rng)

    def _count(self, present: FloatArray) -> None:
        """Count present (finite) values: bins, sums, range, moments."""
        n = len(present)
        idx = _bin_index(self.edges, present)
        k = len(self.counts)
        counts = np.bincount(idx, minlength=k)
        self.counts += counts
        self.sums += np.bincount(idx, weights=present, minlength=k)
        if self._outer_bins_are_out_of_range():
            # Bins laid out by quantile_edges: below the reference minimum is the first bin,
            # above its maximum (at or above the next float) the last.
            self.below_reference += int(counts[0])
            self.above_reference += int(counts[-1])
        else:
            if self.reference_minimum is not None:
                self.below_reference += int(np.count_nonzero(present < self.reference_minimum))
            if self.reference_maximum is not None:
                self.above_reference += int(np.count_nonzero(present > self.reference_maximum))
        batch_mean = float(present.mean())
        dev = present - batch_mean
        # Squares summed by numpy (pairwise), not a BLAS dot product, whose thread pool costs
        # more than the arithmetic when it wakes on a busy machine.
        np.square(dev, out=dev)
        self._merge_moments(n, batch_mean, float(dev.sum()))
        self.minimum = min(self.minimum, float(present.min()))
        self.maximum = max(self.maximum, float(present.max()))

    def _outer_bins_are_out_of_range(self) -> bool:
        """Whether the first bin holds exactly the values below the reference minimum and the
        last those above its maximum (edges from :func:`quantile_edges` of the reference)."""
        lo, hi = self.reference_minimum, self.reference_maximum
        return (
            lo is not None
            and hi is not None
            and len(self.edges) > 0
            and float(self.edges[0]) == lo
            and float(self.edges[-1]) == math.nextafter(hi, math.inf)
        )

    def _merge_moments(self, n: int, mean: float, m2: float) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def _threshold(self) -> float:
        """Keys below this can enter the reservoir."""
        if len(self.sample_keys) < self.sample_size:
            return 1.0
        return float(self.sample_keys[-1]) if self.sample_size else 0.0

    def _offer(self, values: FloatArray, keys: FloatArray) -> None:
        self.sample, self.sample_keys = _merge_samples(
            self.sample, self.sample_keys, values, keys, self.sample_size
        )

    def _sample_batch(self, present: FloatArray, rng: np.random.Generator) -> None:
        n = len(present)
        tau = self._threshold()
        if tau <= 0.0:
            return
        cap = self.sample_size
        if n <= 4 * cap + 64:
            keys = rng.random(n)
            take = keys < tau
            if take.any():
                self._offer(present[take], keys[take])
            return
        # Large batch: draw only the keys that can enter. Keys below ``q`` are a Binomial(n, q)
        # number of uniformly placed uniforms on [0, q); ``q`` is chosen so that (with
        # overwhelming probability) at least ``cap`` of them exist, which makes the result the
        # exact bottom-k of n uniform keys.
        q = min(tau, (cap + 10.0 * math.sqrt(cap) + 50.0) / n)
        m = int(rng.binomial(n, q))
        positions = rng.choice(n, size=m, replace=False)
        merged_values, merged_keys = _merge_samples(
            self.sample, self.sample_keys, present[positions], q * rng.random(m), cap
        )
        if q < tau and (len(merged_keys) < cap or merged_keys[-1] >= q):
            # Not enough small keys drawn (practically never): draw them all.
            keys = rng.random(n)
            take = keys < tau
            self._offer(present[take], keys[take])
            return
        self.sample, self.sample_keys = merged_values, merged_keys

    # --- merging and persistence ------------------------------------------------------------

    def empty_like(self, *, sample_size: int | None = None) -> NumericProfile:
        """Same bins and reference range, nothing counted."""
        return NumericProfile.empty(
            self.edges,
            reference_minimum=self.reference_minimum,
            reference_maximum=self.reference_maximum,
            sample_size=self.sample_size if sample_size is None else sample_size,
        )

    def check_compatible(self, other: NumericProfile, name: str = "") -> None:
        if not _same_edges(self.edges, other.edges):
            raise DataError(f"feature '{name}': profiles have different bin edges")
        if (self.reference_minimum, self.reference_maximum) != (
            other.reference_minimum,
            other.reference_maximum,
        ):
            raise DataError(f"feature '{name}': profiles have different reference ranges")

    def merge(self, other: NumericProfile) -> NumericProfile:
        """Profile of the rows of both (a new object)."""
        return self.merge_many([other])

    def merge_many(self, others: Sequence[NumericProfile], name: str = "") -> NumericProfile:
        """Profile of the rows of this one and all ``others`` (a new object).

        The same result as merging one by one from the left (counts, sample and extremes
        exactly; moments in the same order), in one pass: merging the sixty one-minute buckets
        of an hour costs one reservoir selection, not sixty.
        """
        for other in others:
            self.check_compatible(other, name)
        parts = [self, *others]
        out = self.empty_like(sample_size=max(p.sample_size for p in parts))
        out.counts = np.sum([p.counts for p in parts], axis=0, dtype=np.int64)
        sums = self.sums.copy()
        for p in others:
            sums += p.sums
        out.sums = sums
        out.missing = sum(p.missing for p in parts)
        out.below_reference = sum(p.below_reference for p in parts)
        out.above_reference = sum(p.above_reference for p in parts)
        out.minimum = min(p.minimum for p in parts)
        out.maximum = max(p.maximum for p in parts)
        out.count, out.mean, out.m2 = self.count, self.mean, self.m2
        for p in others:
            if p.count:
                out._merge_moments(p.count, p.mean, p.m2)
        out.sample, out.sample_keys = _bottom_k(
            np.concatenate([p.sample for p in parts]),
            np.concatenate([p.sample_keys for p in parts]),
            out.sample_size,
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": _encode(self.edges, "<f8"),
            "counts": _encode(self.counts, "<i8"),
            "sums": _encode(self.sums, "<f8"),
            "reference_minimum": self.reference_minimum,
            "reference_maximum": self.reference_maximum,
            "missing": self.missing,
            "count": self.count,
            "minimum": _opt_float(self.minimum),
            "maximum": _opt_float(self.maximum),
            "mean": self.mean,
            "m2": self.m2,
            "below_reference": self.below_reference,
            "above_reference": self.above_reference,
            "sample": _encode(self.sample, "<f8"),
            "sample_keys": _encode(self.sample_keys, "<f8"),
            "sample_size": self.sample_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        edges = _decode(data["edges"], "<f8", "edges")
        sample_size = int(data["sample_size"])
        _check_bins(edges, sample_size)
        p = cls(
            edges=edges,
            counts=_decode(data["counts"], "<i8", "counts"),
            sums=_decode(data["sums"], "<f8", "sums"),
            reference_minimum=data.get("reference_minimum"),
            reference_maximum=data.get("reference_maximum"),
            missing=int(data["missing"]),
            count=int(data["count"]),
            minimum=_float_or(data.get("minimum"), math.inf),
            maximum=_float_or(data.get("maximum"), -math.inf),
            mean=float(data["mean"]),
            m2=float(data["m2"]),
            below_reference=int(data["below_reference"]),
            above_reference=int(data["above_reference"]),
            sample=_decode(data["sample"], "<f8", "sample"),
            sample_keys=_decode(data["sample_keys"], "<f8", "sample_keys"),
            sample_size=sample_size,
        )
        if p.counts.shape != (len(edges) + 1,) or p.sums.shape != p.counts.shape:
            raise DataError("numeric profile: counts and sums need len(edges) + 1 entries")
        if p.sample.shape != p.sample_keys.shape or len(p.sample) > sample_size:
            raise DataError(
                "numeric profile: sample and sample_keys need as many entries, at most sample_size"
            )
        return p


# --- categorical ----------------------------------------------------------------------------


@dataclass(eq=False)
class CategoricalProfile:
    """Counts of a categorical feature over fixed reference categories.

    ``counts`` has one entry per category in ``categories`` plus a last ``unseen`` entry for
    every other value. ``unseen_names`` tallies the most frequent unseen values (a Misra-Gries
    summary with ``unseen_capacity`` counters).

    Parameters
    ----------
    categories
        The reference categories, as strings.
    counts
        Count per category, then the unseen count.
    missing
        Number of missing values (None, NaN).
    unseen_names, unseen_capacity
        Bounded tally of unseen values.

    Example
    -------
    >>> p = CategoricalProfile.empty(("a", "b"))
    >>> p.add(np.array(["a", "c", None, "b", "c", "a"], dtype=object))
    >>> p.counts.tolist(), p.missing, p.unseen, p.unseen_names
    ([2, 1, 2], 1, 2, {'c': 2})

    References
    ----------
    Misra and Gries (1982), "Finding repeated elements", Science of Computer Programming 2(2).
    Agarwal et al. (2012), "Mergeable summaries", PODS.
    """

    kind: ClassVar[Literal["categorical"]] = "categorical"

    categories: tuple[str, ...]
    counts: IntArray
    missing: int = 0
    unseen_names: dict[str, int] = field(default_factory=dict)
    unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY
    _lookup: dict[Any, int] | None = field(default=None, init=False, repr=False)
    _index: pd.Index | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.categories = tuple(map(str, self.categories))
        if len(set(self.categories)) != len(self.categories):
            raise DataError("categories must be distinct")

    def _codes(self) -> dict[Any, int]:
        """Category to index, built on the first rows counted (a profile read back from the
        store only to be merged never needs it)."""
        if self._lookup is None:
            self._lookup = {c: i for i, c in enumerate(self.categories)}
        return self._lookup

    @classmethod
    def empty(
        cls, categories: Iterable[Any], *, unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY
    ) -> CategoricalProfile:
        """A profile over ``categories`` with nothing counted yet."""
        cats = tuple(map(str, categories))
        if unseen_capacity < 0:
            raise DataError(f"unseen_capacity must be >= 0, got {unseen_capacity}")
        return cls(
            categories=cats,
            counts=np.zeros(len(cats) + 1, dtype=np.int64),
            unseen_capacity=unseen_capacity,
        )

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def count(self) -> int:
        """Present values (reference categories and unseen)."""
        return int(self.counts.sum())

    @property
    def unseen(self) -> int:
        return int(self.counts[-1])

    @property
    def total(self) -> int:
        return self.count + self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.total if self.total else 0.0

    def add(self, values: Any) -> None:
        """Count a batch of values in place (strings; other values compare by ``str``).

        ``values`` may also be Arrow strings (pandas' pyarrow-backed ``str`` columns, Arrow
        string or dictionary arrays), which are counted without a Python object per row.
        """
        arrow = _arrow_strings(values)
        if arrow is not None:
            names, counts = _arrow_value_counts(arrow)
            self._add_counts(names, counts)
        elif len(values) <= _SMALL_CATEGORICAL:
            self._add_small(values)
        else:
            self._add_large(values)

    def _add_counts(self, names: Sequence[str | None], counts: IntArray) -> None:
        """Count distinct values given with their counts (``None``: missing)."""
        lookup = self._codes()
        k = len(self.categories)
        codes = np.fromiter(
            (-1 if u is None else lookup.get(u, k) for u in names), dtype=np.int64, count=len(names)
        )
        present = codes >= 0
        self.missing += int(counts[~present].sum())
        self.counts += np.bincount(codes[present], weights=counts[present], minlength=k + 1).astype(
            np.int64
        )
        new = np.flatnonzero(codes == k)
        if len(new):
            batch: dict[str, int] = {}
            for i in new.tolist():
                name = str(names[i])
                batch[name] = batch.get(name, 0) + int(counts[i])
            if len(batch) > self.unseen_capacity:
                batch = _merge_tallies({}, batch, self.unseen_capacity)
            self.unseen_names = _merge_tallies(self.unseen_names, batch, self.unseen_capacity)

    def _add_small(self, values: Iterable[Any]) -> None:
        lookup = self._codes()
        k = len(self.categories)
        codes: list[int] = []
        unseen: Counter[str] | None = None
        for v in values:
            code = lookup.get(v)
            if code is None:
                if _is_missing(v):
                    self.missing += 1
                    continue
                code = lookup.get(str(v))
                if code is None:
                    if unseen is None:
                        unseen = Counter()
                    unseen[str(v)] += 1
                    code = k
            codes.append(code)
        if codes:
            if len(codes) == 1:
                self.counts[codes[0]] += 1
            else:
                self.counts += np.bincount(codes, minlength=k + 1)
        if unseen:
            self.unseen_names = _merge_tallies(self.unseen_names, unseen, self.unseen_capacity)

    def _add_large(self, values: Any) -> None:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        k = len(self.categories)
        lookup = self._codes()
        uniq = list(uniques)
        lut = np.fromiter(
            (lookup.get(u, lookup.get(str(u), k)) for u in uniq), dtype=np.int64, count=len(uniq)
        )
        present = codes >= 0
        n_present = int(np.count_nonzero(present))
        self.missing += len(codes) - n_present
        if n_present == 0:
            return
        per_unique = np.bincount(codes[present], minlength=len(uniq))
        self.counts += np.bincount(lut, weights=per_unique, minlength=k + 1).astype(np.int64)
        new = np.flatnonzero(lut == k)
        if len(new):
            batch = {str(uniq[i]): int(per_unique[i]) for i in new}
            if len(batch) > self.unseen_capacity:
                batch = _merge_tallies({}, batch, self.unseen_capacity)
            self.unseen_names = _merge_tallies(self.unseen_names, batch, self.unseen_capacity)

    def top_unseen(self, n: int = 5) -> list[tuple[str, int]]:
        """The most frequent unseen values (approximate counts, see the class docstring)."""
        return sorted(self.unseen_names.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def empty_like(self) -> CategoricalProfile:
        return CategoricalProfile.empty(self.categories, unseen_capacity=self.unseen_capacity)

    def check_compatible(self, other: CategoricalProfile, name: str = "") -> None:
        if self.categories != other.categories:
            raise DataError(f"feature '{name}': profiles have different categories")

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        """Profile of the rows of both (a new object)."""
        return self.merge_many([other])

    def merge_many(
        self, others: Sequence[CategoricalProfile], name: str = ""
    ) -> CategoricalProfile:
        """Profile of the rows of this one and all ``others`` (a new object), as merging one by
        one from the left."""
        for other in others:
            self.check_compatible(other, name)
        parts = [self, *others]
        capacity = max(p.unseen_capacity for p in parts)
        out = CategoricalProfile.empty(self.categories, unseen_capacity=capacity)
        out.counts = np.sum([p.counts for p in parts], axis=0, dtype=np.int64)
        out.missing = sum(p.missing for p in parts)
        tally = self.unseen_names
        for p in others:
            tally = _merge_tallies(tally, p.unseen_names, capacity)
        out.unseen_names = dict(tally) if tally is self.unseen_names else tally
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": _encode(self.counts, "<i8"),
            "missing": self.missing,
            "unseen_names": dict(self.unseen_names),
            "unseen_capacity": self.unseen_capacity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        capacity = int(data["unseen_capacity"])
        if capacity < 0:
            raise DataError(f"unseen_capacity must be >= 0, got {capacity}")
        p = cls(
            categories=data["categories"],
            counts=_decode(data["counts"], "<i8", "counts"),
            missing=int(data["missing"]),
            unseen_names={str(k): int(v) for k, v in data["unseen_names"].items()},
            unseen_capacity=capacity,
        )
        if p.counts.shape != (len(p.categories) + 1,):
            raise DataError("categorical profile: counts need len(categories) + 1 entries")
        return p


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile


# --- dataset --------------------------------------------------------------------------------


class _NumericState:
    """Every numeric feature's bins and moments as stacked arrays, for small batches.

    Adding a few rows to ten features one by one costs more in Python overhead than in
    arithmetic, so small batches update these arrays in a handful of vectorized calls; the
    feature profiles are brought up to date when they are read (:meth:`DatasetProfile.sync`).
    """

    def __init__(self, names: list[str], profiles: list[NumericProfile]) -> None:
        self.names = names
        self.profiles = profiles
        widest = max((len(p.edges) for p in profiles), default=0)
        self.edges = np.full((len(profiles), max(widest, 1)), np.inf)
        for j, p in enumerate(profiles):
            self.edges[j, : len(p.edges)] = p.edges
        sizes = np.array([len(p.counts) for p in profiles], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.slices = [slice(int(o), int(o + s)) for o, s in zip(self.offsets, sizes, strict=True)]
        self.total = int(sizes.sum())
        self.ref_min = np.array([_float_or(p.reference_minimum, np.nan) for p in profiles])
        self.ref_max = np.array([_float_or(p.reference_maximum, np.nan) for p in profiles])
        self.counts = np.concatenate([p.counts for p in profiles] + [np.zeros(1, np.int64)])
        self.sums = np.concatenate([p.sums for p in profiles] + [np.zeros(1)])
        self.missing = np.array([p.missing for p in profiles], dtype=np.int64)
        self.count = np.array([p.count for p in profiles], dtype=np.int64)
        self.mean = np.array([p.mean for p in profiles])
        self.m2 = np.array([p.m2 for p in profiles])
        self.minimum = np.array([p.minimum for p in profiles])
        self.maximum = np.array([p.maximum for p in profiles])
        self.below = np.array([p.below_reference for p in profiles], dtype=np.int64)
        self.above = np.array([p.above_reference for p in profiles], dtype=np.int64)
        self.tau = np.array([p._threshold() for p in profiles])
        self.dirty = False

    def add(self, x: FloatArray, rng: np.random.Generator) -> None:
        """Count a (rows x features) block."""
        n, f = x.shape
        finite = np.isfinite(x)
        n_present = finite.sum(axis=0)
        if int(n_present.sum()) == n * f:
            xz = xn = x
            flat = (x[:, :, None] >= self.edges).sum(axis=2) + self.offsets
        else:
            xz = np.where(finite, x, 0.0)
            xn = np.where(finite, x, np.nan)
            flat = np.where(
                finite, (x[:, :, None] >= self.edges).sum(axis=2) + self.offsets, self.total
            )
        self.counts += np.bincount(flat.ravel(), minlength=self.total + 1)
        self.sums += np.bincount(flat.ravel(), weights=xz.ravel(), minlength=self.total + 1)
        m = np.maximum(n_present, 1)
        batch_mean = xz.sum(axis=0) / m
        dev = np.where(finite, xz - batch_mean, 0.0)
        total = self.count + n_present
        delta = batch_mean - self.mean
        share = n_present / np.maximum(total, 1)
        self.mean += delta * share
        self.m2 += (dev * dev).sum(axis=0) + delta * delta * self.count * share
        self.count = total
        self.missing += n - n_present
        with np.errstate(invalid="ignore"):
            self.below += (xn < self.ref_min).sum(axis=0)
            self.above += (xn > self.ref_max).sum(axis=0)
        self.minimum = np.fmin(self.minimum, np.fmin.reduce(xn, axis=0))
        self.maximum = np.fmax(self.maximum, np.fmax.reduce(xn, axis=0))
        self.dirty = True
        if not (self.tau > 0.0).any():  # no reservoirs (sample_size 0): no keys to draw
            return
        keys = rng.random((n, f))
        offer = finite & (keys < self.tau)
        if offer.any():
            for j in np.flatnonzero(offer.any(axis=0)).tolist():
                take = offer[:, j]
                p = self.profiles[j]
                p._offer(x[take, j], keys[take, j])
                self.tau[j] = p._threshold()

    def write_back(self) -> None:
        """Copy the stacked state into the feature profiles."""
        if not self.dirty:
            return
        for j, p in enumerate(self.profiles):
            sl = self.slices[j]
            p.counts = self.counts[sl].copy()
            p.sums = self.sums[sl].copy()
            p.missing = int(self.missing[j])
            p.count = int(self.count[j])
            p.mean = float(self.mean[j])
            p.m2 = float(self.m2[j])
            p.minimum = float(self.minimum[j])
            p.maximum = float(self.maximum[j])
            p.below_reference = int(self.below[j])
            p.above_reference = int(self.above[j])
        self.dirty = False


class DatasetProfile:
    """Profiles of every feature of a set of rows.

    Parameters
    ----------
    features
        Feature name to its profile, in schema order.
    n_rows
        Rows added.
    seed
        Seed of the reservoir keys. Profiles that will be merged need different seeds
        (:meth:`empty_like` draws a fresh one unless told).

    Small batches update stacked per-feature arrays; :attr:`features` brings the feature
    profiles up to date when read. A profile is not thread-safe: give each worker thread its
    own window and merge them (that is what merging is for).

    Example
    -------
    >>> from driftline.schema import infer_schema
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.normal(size=1000),
    ...                       "c": rng.choice(["a", "b"], size=1000)})
    >>> reference = build_reference_profile(frame, infer_schema(frame, None), bins=4)
    >>> reference.features["x"].counts.tolist()
    [0, 249, 250, 250, 251, 0]
    >>> window = reference.empty_like(seed=1)
    >>> window.add_frame(pd.DataFrame({"x": [0.1, 9.0, None], "c": ["a", "z", "b"]}))
    >>> window.n_rows, window.features["x"].counts.tolist(), window.features["c"].counts.tolist()
    (3, [0, 0, 0, 1, 0, 1], [1, 1, 1])
    >>> later = reference.empty_like(seed=2)
    >>> later.add_columns({"x": np.array([0.2]), "c": np.array(["a"], dtype=object)})
    >>> window.merge(later).features["c"].counts.tolist()
    [1, 2, 1]
    """

    def __init__(
        self,
        features: Mapping[str, FeatureProfile],
        *,
        n_rows: int = 0,
        seed: int = 0,
    ) -> None:
        self._features: dict[str, FeatureProfile] = dict(features)
        self.n_rows = int(n_rows)
        self.seed = int(seed)
        self._rng: np.random.Generator | None = None
        self._state: _NumericState | None = None
        self._numeric = [k for k, p in self._features.items() if isinstance(p, NumericProfile)]
        self._categorical = [
            (k, p) for k, p in self._features.items() if isinstance(p, CategoricalProfile)
        ]

    @property
    def features(self) -> dict[str, FeatureProfile]:
        """Feature name to profile (brought up to date with every row added so far)."""
        self.sync()
        return self._features

    def sync(self) -> None:
        """Bring the feature profiles up to date with the rows added in small batches."""
        if self._state is not None:
            self._state.write_back()
            self._state = None

    def __repr__(self) -> str:
        return f"DatasetProfile(features={list(self._features)}, n_rows={self.n_rows})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetProfile):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __getitem__(self, name: str) -> FeatureProfile:
        return self.features[name]

    # --- construction -----------------------------------------------------------------------

    def empty_like(
        self, *, seed: int | None = None, sample_size: int | None = None
    ) -> DatasetProfile:
        """Same bins and categories, zero counts.

        ``seed`` seeds the reservoir keys; by default a fresh random one, so that windows built
        by different workers sample independently.
        """
        features: dict[str, FeatureProfile] = {}
        for name, p in self.features.items():
            if isinstance(p, NumericProfile):
                features[name] = p.empty_like(sample_size=sample_size)
            else:
                features[name] = p.empty_like()
        if seed is None:
            entropy = np.random.SeedSequence().entropy
            seed = int(entropy) % (2**63) if isinstance(entropy, int) else 0
        return DatasetProfile(features, seed=seed)

    # --- adding rows ------------------------------------------------------------------------

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng([self.seed, self.n_rows])
        return self._rng

    def add_frame(self, frame: pd.DataFrame) -> None:
        """Count the rows of ``frame`` (it needs a column per profiled feature)."""
        position = {name: i for i, name in enumerate(frame.columns)}
        missing = [name for name in self._features if name not in position]
        if missing:
            raise DataError(f"frame lacks profiled column(s) {missing}")
        if len(frame) <= _SMALL_FRAME and len(position) == frame.shape[1]:
            # One conversion of the whole block beats one pandas column access per feature.
            block = frame.to_numpy(dtype=object, na_value=np.nan)
            self.add_columns({name: block[:, position[name]] for name in self._features})
        else:
            # Categorical columns stay Series: factorizing pandas' own string arrays is faster
            # and far smaller than materializing a Python string object per row.
            self.add_columns(
                {
                    name: (
                        frame[name] if isinstance(p, CategoricalProfile) else frame[name].to_numpy()
                    )
                    for name, p in self._features.items()
                }
            )

    def add_columns(self, columns: Mapping[str, Any]) -> None:
        """Count rows given as one array per feature (the fast path of :meth:`add_frame`).

        Numeric columns may hold None/NaN for missing values; categorical columns strings
        (other values are compared by ``str``).
        """
        if not self._features:
            return
        try:
            lengths = {len(columns[name]) for name in self._features}
        except KeyError as exc:
            raise DataError(f"no column for profiled feature {exc}") from None
        if len(lengths) != 1:
            raise DataError(f"columns have different lengths {sorted(lengths)}")
        n = lengths.pop()
        if n == 0:
            return
        rng = self._generator()
        if self._numeric and n * len(self._numeric) * self._width() <= _BROADCAST_LIMIT:
            x = np.array([columns[name] for name in self._numeric], dtype=np.float64).T
            if self._state is None:
                self._state = _NumericState(
                    self._numeric,
                    [p for p in self._features.values() if isinstance(p, NumericProfile)],
                )
            self._state.add(x, rng)
        elif self._numeric:
            self.sync()
            for name in self._numeric:
                p = self._features[name]
                assert isinstance(p, NumericProfile)
                p.add(np.asarray(columns[name], dtype=np.float64), rng)
        for name, c in self._categorical:
            c.add(columns[name])
        self.n_rows += n

    def _width(self) -> int:
        return max(len(p.edges) for p in self._features.values() if isinstance(p, NumericProfile))

    # --- merging ----------------------------------------------------------------------------

    def check_compatible(self, other: DatasetProfile) -> None:
        """Raise :class:`DataError` unless ``other`` has the same features and bins."""
        mine, theirs = self.features, other.features
        if list(mine) != list(theirs):
            raise DataError(f"profiles have different features: {list(mine)} vs {list(theirs)}")
        for name, p in mine.items():
            q = theirs[name]
            if isinstance(p, NumericProfile) and isinstance(q, NumericProfile):
                p.check_compatible(q, name)
                continue
            if isinstance(p, CategoricalProfile) and isinstance(q, CategoricalProfile):
                p.check_compatible(q, name)
                continue
            raise DataError(f"feature '{name}' is {p.kind} in one profile, {q.kind} in other")

    def merge(self, other: DatasetProfile) -> DatasetProfile:
        """Profile of the rows of both (a new object; neither input changes)."""
        return merge_all([self, other])

    # --- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (no NaN or infinity) that :meth:`from_dict` turns back exactly."""
        return {
            "format": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "seed": self.seed,
            "features": {name: p.to_dict() for name, p in self.features.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        if data.get("format") not in _READABLE_FORMATS:
            raise DataError(
                f"unsupported profile format {data.get('format')!r}; expected one of "
                f"{_READABLE_FORMATS}"
            )
        features: dict[str, FeatureProfile] = {}
        for name, spec in data["features"].items():
            if spec["kind"] == "numeric":
                features[name] = NumericProfile.from_dict(spec)
            elif spec["kind"] == "categorical":
                features[name] = CategoricalProfile.from_dict(spec)
            else:
                raise DataError(f"feature '{name}': unknown profile kind {spec['kind']!r}")
        return cls(features, n_rows=int(data["n_rows"]), seed=int(data["seed"]))

    @staticmethod
    def merge_all(profiles: Iterable[DatasetProfile]) -> DatasetProfile:
        """Merge any number of profiles (at least one)."""
        return merge_all(profiles)


def merge_all(profiles: Iterable[DatasetProfile]) -> DatasetProfile:
    """Merge any number of compatible profiles (at least one) into a new profile.

    The result equals merging them one by one from the left, computed feature by feature in
    one pass (see :meth:`NumericProfile.merge_many`): a window of many stored buckets costs
    one merge per feature, not one per bucket.
    """
    parts = list(profiles)
    if not parts:
        raise DataError("merge_all needs at least one profile")
    tables = [p.features for p in parts]
    names = list(tables[0])
    for table in tables[1:]:
        if list(table) != names:
            raise DataError(f"profiles have different features: {names} vs {list(table)}")
    features: dict[str, FeatureProfile] = {}
    for name, first in tables[0].items():
        group = [table[name] for table in tables[1:]]
        for q in group:
            if q.kind != first.kind:
                raise DataError(
                    f"feature '{name}' is {first.kind} in one profile, {q.kind} in other"
                )
        if isinstance(first, NumericProfile):
            numeric = [q for q in group if isinstance(q, NumericProfile)]
            features[name] = first.merge_many(numeric, name)
        else:
            categorical = [q for q in group if isinstance(q, CategoricalProfile)]
            features[name] = first.merge_many(categorical, name)
    seed = 0
    for p in parts:
        seed ^= p.seed
    return DatasetProfile(features, n_rows=sum(p.n_rows for p in parts), seed=seed)


class _UnusualPayloadError(Exception):
    """Stored payloads the direct merge does not handle (the general path decides)."""


def merge_payloads(payloads: Iterable[Mapping[str, Any]]) -> DatasetProfile:
    """Merge stored profiles (:meth:`DatasetProfile.to_dict` dicts, at least one) into one.

    The same result as ``merge_all([DatasetProfile.from_dict(d) for d in payloads])``, bit for
    bit, without building a profile object per payload and feature: each feature's arrays are
    decoded for all payloads at once (one ``fromhex`` over the joined strings) and added as a
    payloads x bins array; moments, extremes and tallies are combined in the same order as
    :func:`merge_all`. A window check reads its sixty one-minute buckets this way.

    Payloads of profile format 2 with the same features, bins and categories take this path;
    anything else (format 1 lists, differing edges, corrupt arrays...) goes through
    :meth:`DatasetProfile.from_dict` and :func:`merge_all`, which give their usual result or
    error.

    Example
    -------
    >>> p = DatasetProfile({"x": NumericProfile.empty([0.0, 1.0])}, seed=1)
    >>> p.add_columns({"x": np.array([-1.0, 0.5, 2.0])})
    >>> merged = merge_payloads([p.to_dict(), p.to_dict()])
    >>> merged.n_rows, merged.features["x"].counts.tolist()
    (6, [2, 2, 2])
    >>> merged == merge_all([p, p])
    True
    """
    parts = list(payloads)
    if not parts:
        raise DataError("merge_payloads needs at least one profile")
    try:
        return _merge_payloads(parts)
    except (_UnusualPayloadError, DataError, KeyError, TypeError, ValueError, AttributeError):
        return merge_all(DatasetProfile.from_dict(d) for d in parts)


def _stacked(specs: Sequence[Mapping[str, Any]], key: str, dtype: str, width: int) -> Any:
    """Field ``key`` of every spec as a (specs x width) array; each must hold ``width``
    hex-encoded ``dtype`` values."""
    texts = [spec[key] for spec in specs]
    chars = 16 * width
    for text in texts:
        if type(text) is not str or len(text) != chars:
            raise _UnusualPayloadError
    raw = bytearray.fromhex("".join(texts))
    if len(raw) != 8 * width * len(texts):
        raise _UnusualPayloadError
    values = np.frombuffer(raw, dtype=dtype).reshape(len(texts), width)
    return values if _LITTLE_ENDIAN else values.astype(dtype[1:])


def _merge_numeric_specs(specs: Sequence[Mapping[str, Any]]) -> NumericProfile:
    first = specs[0]
    edges_text = first["edges"]
    ref_range = (first.get("reference_minimum"), first.get("reference_maximum"))
    for spec in specs:
        if (
            spec["edges"] != edges_text
            or (
                spec.get("reference_minimum"),
                spec.get("reference_maximum"),
            )
            != ref_range
        ):
            raise _UnusualPayloadError
    if type(edges_text) is not str:
        raise _UnusualPayloadError
    edges = _decode(edges_text, "<f8", "edges")
    sizes = [int(spec["sample_size"]) for spec in specs]
    try:
        _check_bins(edges, min(sizes))
    except DataError:
        raise _UnusualPayloadError from None
    width = len(edges) + 1
    counts = _stacked(specs, "counts", "<i8", width)
    sums = _stacked(specs, "sums", "<f8", width)
    out = NumericProfile(
        edges=edges,
        counts=counts.sum(axis=0, dtype=np.int64),
        # Row by row from the first, as merge_all adds them.
        sums=np.add.accumulate(sums, axis=0)[-1].copy(),
        reference_minimum=ref_range[0],
        reference_maximum=ref_range[1],
        sample_size=max(sizes),
    )
    out.missing = sum(int(spec["missing"]) for spec in specs)
    out.below_reference = sum(int(spec["below_reference"]) for spec in specs)
    out.above_reference = sum(int(spec["above_reference"]) for spec in specs)
    out.minimum = min(_float_or(spec.get("minimum"), math.inf) for spec in specs)
    out.maximum = max(_float_or(spec.get("maximum"), -math.inf) for spec in specs)
    out.count, out.mean, out.m2 = int(first["count"]), float(first["mean"]), float(first["m2"])
    for spec in specs[1:]:
        count, mean, m2 = int(spec["count"]), float(spec["mean"]), float(spec["m2"])
        if count:
            out._merge_moments(count, mean, m2)
    samples, keys = [], []
    for spec, size in zip(specs, sizes, strict=True):
        sample, sample_keys = spec["sample"], spec["sample_keys"]
        if type(sample) is not str or type(sample_keys) is not str:
            raise _UnusualPayloadError
        if sample or sample_keys:  # a bucket stored with a reservoir (before window buckets
            # kept none): checked and decoded as from_dict does
            if len(sample) != len(sample_keys) or len(sample) % 16 or len(sample) > 16 * size:
                raise _UnusualPayloadError
            samples.append(sample)
            keys.append(sample_keys)
    if samples:
        values = _decode("".join(samples), "<f8", "sample")
        value_keys = _decode("".join(keys), "<f8", "sample_keys")
        if len(values) != len(value_keys) or 16 * len(values) != sum(map(len, samples)):
            raise _UnusualPayloadError
        out.sample, out.sample_keys = _bottom_k(values, value_keys, out.sample_size)
    return out


def _merge_categorical_specs(specs: Sequence[Mapping[str, Any]]) -> CategoricalProfile:
    first = specs[0]
    names = first["categories"]
    for spec in specs:
        if spec["categories"] != names:
            raise _UnusualPayloadError
    capacities = [int(spec["unseen_capacity"]) for spec in specs]
    if min(capacities) < 0:
        raise _UnusualPayloadError
    try:
        out = CategoricalProfile.empty(names, unseen_capacity=max(capacities))
    except DataError:
        raise _UnusualPayloadError from None
    out.counts = _stacked(specs, "counts", "<i8", len(out.categories) + 1).sum(
        axis=0, dtype=np.int64
    )
    out.missing = sum(int(spec["missing"]) for spec in specs)
    tallies = [{str(k): int(v) for k, v in spec["unseen_names"].items()} for spec in specs]
    tally = tallies[0]
    for other in tallies[1:]:
        tally = _merge_tallies(tally, other, out.unseen_capacity)
    out.unseen_names = tally
    return out


def _merge_payloads(parts: Sequence[Mapping[str, Any]]) -> DatasetProfile:
    names = list(parts[0]["features"])
    for data in parts:
        if data.get("format") != FORMAT_VERSION or list(data["features"]) != names:
            raise _UnusualPayloadError
    features: dict[str, FeatureProfile] = {}
    for name in names:
        specs = [data["features"][name] for data in parts]
        kind = specs[0]["kind"]
        if any(spec["kind"] != kind for spec in specs):
            raise _UnusualPayloadError
        if kind == "numeric":
            features[name] = _merge_numeric_specs(specs)
        elif kind == "categorical":
            features[name] = _merge_categorical_specs(specs)
        else:
            raise _UnusualPayloadError
    seed = 0
    for data in parts:
        seed ^= int(data["seed"])
    return DatasetProfile(features, n_rows=sum(int(d["n_rows"]) for d in parts), seed=seed)


# --- building reference profiles ------------------------------------------------------------


def quantile_edges(values: npt.ArrayLike, bins: int = DEFAULT_BINS) -> FloatArray:
    """Inner bin edges for a numeric reference sample.

    Edges are the reference quantiles at ``1/bins, ..., (bins-1)/bins`` (observed values),
    plus the minimum and just above the maximum so that values outside the reference range
    land in their own open-ended bins. A value that holds at least ``1/bins`` of the data (a
    tie, a zero of a zero-inflated feature, a level of an integer feature) gets a bin of its
    own. Bins the reference leaves empty between two edges are merged into their right-hand
    neighbour, so edges are strictly increasing and every inner bin holds reference data.

    Parameters
    ----------
    values
        Reference values; non-finite ones are ignored.
    bins
        Target number of quantile bins (at least 2).

    Example
    -------
    >>> quantile_edges([0, 0, 0, 0, 0, 1, 2, 3, 4, 5], bins=4).tolist()
    [0.0, 5e-324, 3.0, 5.000000000000001]
    >>> quantile_edges([1, 1, 2, 2, 2, 3], bins=10).tolist()
    [1.0, 2.0, 3.0, 3.0000000000000004]

    References
    ----------
    Hyndman and Fan (1996), "Sample quantiles in statistical packages", The American
    Statistician 50(4) (definition 1, the inverse of the empirical CDF).
    """
    if bins < 2:
        raise DataError(f"bins must be >= 2, got {bins}")
    x = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    x = np.sort(x if finite.all() else x[finite])
    return _sorted_quantile_edges(x, bins)


def _sorted_quantile_edges(x: FloatArray, bins: int) -> FloatArray:
    """:func:`quantile_edges` of sorted finite values."""
    n = len(x)
    if n == 0:
        return _empty_float()
    # A heavy value (at least n / bins copies) is a run of at least ``step`` equal sorted
    # values, so it sits at one of the positions 0, step, 2 * step...: count only those.
    step = -(-n // bins)
    sampled = np.unique(x[::step])
    copies = np.searchsorted(x, sampled, side="right") - np.searchsorted(x, sampled, side="left")
    heavy = sampled[copies * bins >= n]
    # Inverse of the empirical CDF at i / bins: the value of rank ceil(n * i / bins).
    ranks = (n * np.arange(1, bins) + bins - 1) // bins
    quantiles = x[np.clip(ranks - 1, 0, n - 1)]
    candidates = np.unique(
        np.concatenate(
            [quantiles, heavy, np.nextafter(heavy, np.inf), [x[0], np.nextafter(x[-1], np.inf)]]
        )
    )
    candidates = candidates[candidates >= x[0]]
    # Values in bin [candidates[i], candidates[i + 1]) (the last bin open), from the sorted
    # values' positions. An empty bin is merged into its left neighbour by dropping its left
    # edge; the minimum and the edge just above the maximum (whose bins hold data or lie
    # outside the reference range) always stay.
    inner = np.diff(np.append(np.searchsorted(x, candidates, side="left"), n))
    keep = inner > 0
    keep[0] = keep[-1] = True
    return np.asarray(candidates[keep], dtype=np.float64)


def _numeric_values(column: pd.Series[Any]) -> FloatArray:
    if column.dtype == np.float64:  # numpy-backed floats, NaN for missing: as they are
        return np.asarray(column.to_numpy(), dtype=np.float64)
    if pd.api.types.is_bool_dtype(column.dtype):
        return np.asarray(column.astype(np.float64).to_numpy(), dtype=np.float64)
    try:
        return pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column '{column.name}' must be numeric: {exc}") from exc


def _arrow_strings(values: Any) -> Any:
    """The Arrow array of a column of strings -- a pandas column of pyarrow-backed strings, an
    Arrow string or dictionary-of-strings array -- or None for any other column."""
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if not (
            (isinstance(dtype, pd.StringDtype) and str(dtype.storage).startswith("pyarrow"))
            or isinstance(dtype, pd.ArrowDtype)
        ):
            return None
    elif not type(values).__module__.startswith("pyarrow"):
        return None
    import pyarrow as pa  # noqa: PLC0415 — only for Arrow-backed columns

    arrow = pa.array(values) if isinstance(values, pd.Series) else values
    if not isinstance(arrow, pa.Array | pa.ChunkedArray):
        return None
    t = arrow.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arrow
    return None


def _arrow_value_counts(arrow: Any) -> tuple[list[str | None], IntArray]:
    """Distinct values of Arrow strings (None for missing) and how often each occurs."""
    import pyarrow.compute as pc  # noqa: PLC0415 — only for Arrow-backed columns

    found = pc.value_counts(arrow)
    names: list[str | None] = found.field("values").to_pylist()
    return names, np.asarray(found.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)


def category_counts(values: Any) -> Counter[str]:
    """Count of each present value of a categorical column, by its string form.

    Counts of parts of a column add up to the counts of the whole (``Counter`` addition), so
    the categories of a reference too large for memory are counted batch by batch.
    """
    arrow = _arrow_strings(values)
    if arrow is not None:
        names, counts = _arrow_value_counts(arrow)
        total: Counter[str] = Counter()
        for name, count in zip(names, counts.tolist(), strict=True):
            if name is not None:
                total[name] += count
        return total
    column = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    present = column.dropna()
    if not pd.api.types.is_string_dtype(present.dtype) or present.dtype == object:
        present = present.astype(object).astype(str)
    return Counter({str(k): int(v) for k, v in present.value_counts().items()})


def _rank_categories(counts: Mapping[str, int], max_categories: int) -> tuple[str, ...]:
    ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return tuple(str(k) for k, _ in ranked[:max_categories])


def _category_order(values: Any, max_categories: int) -> tuple[str, ...]:
    return _rank_categories(category_counts(values), max_categories)


def reference_bins(
    schema: FeatureSchema,
    numeric: Callable[[str], FloatArray],
    categories: Callable[[str], Mapping[str, int]],
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY,
    seed: int = 0,
) -> DatasetProfile:
    """An empty reference profile: the bins and categories of the reference, nothing counted.

    The layout step of :func:`build_reference_profile`, apart so that a reference larger than
    memory can be laid out from what it needs -- ``numeric(name)``, the float values of one
    numeric feature (quantile edges need them all), and ``categories(name)``, the counts per
    category of one categorical feature (:func:`category_counts`, which add up over batches)
    -- and then counted batch by batch with :meth:`DatasetProfile.add_columns`.
    """
    features: dict[str, FeatureProfile] = {}
    for spec in schema.features:
        if spec.kind == "categorical":
            features[spec.name] = CategoricalProfile.empty(
                _rank_categories(categories(spec.name), max_categories),
                unseen_capacity=unseen_capacity,
            )
        else:
            features[spec.name] = _numeric_layout(
                _sorted_present(numeric(spec.name))[0], bins, sample_size
            )
    return DatasetProfile(features, seed=seed)


def _sorted_present(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The finite values of ``x`` sorted, and in their order."""
    finite = np.isfinite(x)
    present = x if finite.all() else x[finite]
    return np.sort(present), present


def _numeric_layout(ordered: FloatArray, bins: int, sample_size: int) -> NumericProfile:
    """The empty reference profile of a numeric feature, from its sorted finite values."""
    present = len(ordered) > 0
    return NumericProfile.empty(
        _sorted_quantile_edges(ordered, bins) if bins >= 2 else quantile_edges(ordered, bins),
        reference_minimum=float(ordered[0]) if present else None,
        reference_maximum=float(ordered[-1]) if present else None,
        sample_size=sample_size,
    )


def build_reference_profile(
    frame: pd.DataFrame,
    schema: FeatureSchema,
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY,
    seed: int = 0,
) -> DatasetProfile:
    """Profile the training data of a model: the reference every window is compared with.

    Numeric and boolean features get :func:`quantile_edges` bins; categorical features keep
    their ``max_categories`` most frequent values (ties by name), the rest count as unseen.

    Parameters
    ----------
    frame
        Reference rows with a column per schema feature.
    schema
        The model's feature schema (names and kinds).
    bins
        Target number of quantile bins per numeric feature.
    sample_size
        Reservoir capacity per numeric feature.
    max_categories
        Most categories kept per categorical feature.
    unseen_capacity
        Unseen category names tallied per categorical feature.
    seed
        Seed of the reservoir keys.

    Example
    -------
    >>> from driftline.schema import infer_schema
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"n": rng.poisson(2.0, 500).astype(float),
    ...                       "c": rng.choice(["x", "y", "z"], 500, p=[0.7, 0.2, 0.1])})
    >>> ref = build_reference_profile(frame, infer_schema(frame, None))
    >>> ref.features["n"].edges.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 9.000000000000002]
    >>> ref.features["c"].categories, ref.features["c"].counts.tolist()
    (('x', 'y', 'z'), [363, 85, 52, 0])

    References
    ----------
    Hyndman and Fan (1996), "Sample quantiles in statistical packages".
    """
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise DataError(f"reference data lacks feature column(s) {missing}")
    columns = profile_columns(frame, schema)
    return reference_profile(
        schema,
        lambda name: columns[name],
        lambda name: value_counts(columns[name]),
        len(frame),
        bins=bins,
        sample_size=sample_size,
        max_categories=max_categories,
        unseen_capacity=unseen_capacity,
        seed=seed,
    )


def value_counts(values: Any) -> tuple[list[str | None], IntArray]:
    """The distinct values of a categorical column by their string form (None: missing) and
    how often each occurs. Counts of parts of a column add up to those of the whole."""
    arrow = _arrow_strings(values)
    if arrow is not None:
        return _arrow_value_counts(arrow)
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    present = codes >= 0
    per_unique = np.bincount(codes[present], minlength=len(uniques))
    total: dict[str | None, int] = {}
    for u, count in zip(uniques, per_unique.tolist(), strict=True):
        name = str(u)
        total[name] = total.get(name, 0) + count
    total[None] = len(codes) - int(np.count_nonzero(present))
    return list(total), np.fromiter(total.values(), dtype=np.int64, count=len(total))


def reference_profile(
    schema: FeatureSchema,
    numeric: Callable[[str], FloatArray],
    counts: Callable[[str], tuple[list[str | None], IntArray]],
    n_rows: int,
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    unseen_capacity: int = DEFAULT_UNSEEN_CAPACITY,
    seed: int = 0,
) -> DatasetProfile:
    """A reference profile laid out and counted in one look at each feature.

    ``numeric(name)`` gives every value of a numeric feature (its quantile edges need them
    all): they are sorted once, and the edges, bin counts, sums, range and moments all come
    from the sorted values. ``counts(name)`` gives the :func:`value_counts` of a categorical
    feature (they add up over batches): its categories and its counts come from them. So a
    reference read one column at a time is read once, not once for the layout and again for
    the counts. Counts, ranges, tallies and the reservoir samples equal those of
    :func:`reference_bins` followed by :meth:`DatasetProfile.add_columns` of all rows at once;
    sums and moments agree up to rounding (they are added in another order).
    """
    # The generator DatasetProfile.add_columns would draw from, drawn in the same feature order.
    rng = np.random.default_rng([seed, 0])
    features: dict[str, FeatureProfile] = {}
    for spec in schema.features:
        if spec.kind == "categorical":
            names, found = counts(spec.name)
            present = {
                n: int(k) for n, k in zip(names, found.tolist(), strict=True) if n is not None
            }
            c = CategoricalProfile.empty(
                _rank_categories(present, max_categories), unseen_capacity=unseen_capacity
            )
            c._add_counts(names, found)
            features[spec.name] = c
        else:
            values = numeric(spec.name)
            ordered, present_values = _sorted_present(values)
            p = _numeric_layout(ordered, bins, sample_size)
            p._add_sorted(ordered, present_values, len(values) - len(ordered), rng)
            features[spec.name] = p
    profile = DatasetProfile(features, n_rows=n_rows, seed=seed)
    profile._rng = rng
    return profile


def profile_columns(frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, Any]:
    """The columns a profile counts, from rows: float arrays for numeric and boolean
    features, the values themselves for categorical ones (compared by their string form).

    Every profile of rows -- a reference, a window, a block of a dataset on a Ray worker --
    goes through this one conversion, so the same rows count the same wherever they are read.
    """
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise DataError(f"data lacks feature column(s) {missing}")
    columns: dict[str, Any] = {}
    for spec in schema.features:
        column = frame[spec.name]
        if spec.kind == "categorical":
            string = pd.api.types.is_string_dtype(column.dtype) and column.dtype != object
            columns[spec.name] = column if string else column.to_numpy(dtype=object)
        else:
            columns[spec.name] = _numeric_values(column)
    return columns


# --- model outputs --------------------------------------------------------------------------


def output_columns(
    predicted: Sequence[Any] | npt.ArrayLike, scores: npt.ArrayLike
) -> dict[str, Any]:
    """Columns of an output profile for one batch of predictions.

    ``scores`` is one score per row (e.g. the positive-class probability or an anomaly score)
    or a probability matrix: with two columns the second (positive class) is used, with more
    the largest (the model's confidence).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2:
        s = s[:, 1] if s.shape[1] == 2 else s.max(axis=1)
    elif s.ndim != 1:
        raise DataError(f"scores must be 1-D or 2-D, got shape {s.shape}")
    labels = np.asarray(predicted, dtype=object).ravel()
    if len(labels) != len(s):
        raise DataError(f"{len(labels)} predictions but {len(s)} scores")
    return {PREDICTION: labels, SCORE: s}


def build_output_profile(
    predicted: Sequence[Any] | npt.ArrayLike,
    scores: npt.ArrayLike,
    classes: Sequence[Any],
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> DatasetProfile:
    """Reference profile of a model's outputs: features ``prediction`` and ``score``.

    ``prediction`` is categorical over ``classes`` (empty for anomaly models without classes:
    every label then counts as unseen); ``score`` is numeric, binned at the reference score
    quantiles. Window profiles come from :meth:`DatasetProfile.empty_like` and are fed with
    ``window.add_columns(output_columns(predicted, scores))``.

    Parameters
    ----------
    predicted
        Predicted labels of the reference rows.
    scores
        Scores of the reference rows (see :func:`output_columns`).
    classes
        The model's classes.
    bins, sample_size, seed
        As in :func:`build_reference_profile`.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.beta(2, 5, size=1000)
    >>> ref = build_output_profile((scores > 0.5).astype(int), scores, classes=[0, 1], bins=5)
    >>> ref.features["prediction"].counts.tolist()
    [913, 87, 0]
    >>> window = ref.empty_like(seed=1)
    >>> window.add_columns(output_columns([1, 1], [[0.2, 0.8], [0.1, 0.9]]))
    >>> window.features["score"].counts.tolist()
    [0, 0, 0, 0, 0, 1, 1]

    References
    ----------
    Rabanser, Guennemann and Lipton (2019), "Failing loudly: an empirical study of methods
    for detecting dataset shift", NeurIPS (monitoring model outputs as a shift signal).
    """
    columns = output_columns(predicted, scores)
    s = columns[SCORE]
    finite = s[np.isfinite(s)]
    features: dict[str, FeatureProfile] = {
        PREDICTION: CategoricalProfile.empty(tuple(map(str, classes))),
        SCORE: NumericProfile.empty(
            quantile_edges(finite, bins),
            reference_minimum=float(finite.min()) if len(finite) else None,
            reference_maximum=float(finite.max()) if len(finite) else None,
            sample_size=sample_size,
        ),
    }
    profile = DatasetProfile(features, seed=seed)
    profile.add_columns(columns)
    return profile
