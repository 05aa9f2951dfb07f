"""The profile of a numeric feature: counts and sums per quantile bin, moments, extremes, the
reference range and a bottom-k reservoir sample; and the one merge of numeric profiles
(:class:`NumericParts`), shared by profile objects and stored profiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from driftline.errors import DataError
from driftline.profiles.encoding import FloatArray, IntArray, decode, encode, float_or, opt_float

__all__ = ["DEFAULT_SAMPLE_SIZE", "NumericParts", "NumericProfile", "check_bins", "empty_float"]

#: Default capacity of the reservoir sample of a numeric feature.
DEFAULT_SAMPLE_SIZE = 256
# Up to this many edges, large batches are binned by comparing with each edge in turn.
_SCAN_EDGES = 64
# Rows compared with every edge before moving on: a block and its flags stay in the CPU cache
# (64k float64 = 512 KiB), so the values are read from memory once, not once per edge.
_SCAN_BLOCK = 1 << 16


def empty_float() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


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


def _bottom_k(values: FloatArray, keys: FloatArray, capacity: int) -> tuple[FloatArray, FloatArray]:
    """The ``capacity`` smallest (key, value) pairs, sorted by (key, value)."""
    if capacity <= 0:
        return empty_float(), empty_float()
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


def check_bins(edges: FloatArray, sample_size: int) -> None:
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
    sample: FloatArray = field(default_factory=empty_float)
    sample_keys: FloatArray = field(default_factory=empty_float)
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
        check_bins(e, sample_size)
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
        """Profile of the rows of this one and all ``others`` (a new object): the same as
        merging one by one from the left, in one pass (:meth:`NumericParts.merged`)."""
        for other in others:
            self.check_compatible(other, name)
        return NumericParts.of_profiles([self, *others]).merged()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": encode(self.edges, "<f8"),
            "counts": encode(self.counts, "<i8"),
            "sums": encode(self.sums, "<f8"),
            "reference_minimum": self.reference_minimum,
            "reference_maximum": self.reference_maximum,
            "missing": self.missing,
            "count": self.count,
            "minimum": opt_float(self.minimum),
            "maximum": opt_float(self.maximum),
            "mean": self.mean,
            "m2": self.m2,
            "below_reference": self.below_reference,
            "above_reference": self.above_reference,
            "sample": encode(self.sample, "<f8"),
            "sample_keys": encode(self.sample_keys, "<f8"),
            "sample_size": self.sample_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        edges = decode(data["edges"], "<f8", "edges")
        sample_size = int(data["sample_size"])
        check_bins(edges, sample_size)
        p = cls(
            edges=edges,
            counts=decode(data["counts"], "<i8", "counts"),
            sums=decode(data["sums"], "<f8", "sums"),
            reference_minimum=data.get("reference_minimum"),
            reference_maximum=data.get("reference_maximum"),
            missing=int(data["missing"]),
            count=int(data["count"]),
            minimum=float_or(data.get("minimum"), math.inf),
            maximum=float_or(data.get("maximum"), -math.inf),
            mean=float(data["mean"]),
            m2=float(data["m2"]),
            below_reference=int(data["below_reference"]),
            above_reference=int(data["above_reference"]),
            sample=decode(data["sample"], "<f8", "sample"),
            sample_keys=decode(data["sample_keys"], "<f8", "sample_keys"),
            sample_size=sample_size,
        )
        if p.counts.shape != (len(edges) + 1,) or p.sums.shape != p.counts.shape:
            raise DataError("numeric profile: counts and sums need len(edges) + 1 entries")
        if p.sample.shape != p.sample_keys.shape or len(p.sample) > sample_size:
            raise DataError(
                "numeric profile: sample and sample_keys need as many entries, at most sample_size"
            )
        return p


@dataclass(frozen=True)
class NumericParts:
    """Numeric profiles on the same bins, side by side field by field in merge order: the
    input of the one merge of numeric profiles, :meth:`merged`.

    Built from profile objects (:meth:`of_profiles`, behind :meth:`NumericProfile.merge_many`)
    or decoded straight from stored profiles, a field of all of them at once
    (:func:`driftline.profiles.stored.merge_payloads`): both merge here, so they agree bit for
    bit.
    """

    edges: FloatArray
    reference_minimum: float | None
    reference_maximum: float | None
    #: (parts x bins) arrays.
    counts: IntArray
    sums: FloatArray
    missing: Sequence[int]
    below_reference: Sequence[int]
    above_reference: Sequence[int]
    minimum: Sequence[float]
    maximum: Sequence[float]
    #: ``(count, mean, m2)`` of each part.
    moments: Sequence[tuple[int, float, float]]
    #: Every part's reservoir sample and keys, concatenated.
    sample: FloatArray
    sample_keys: FloatArray
    #: The largest sample size among the parts.
    sample_size: int

    @classmethod
    def of_profiles(cls, parts: Sequence[NumericProfile]) -> NumericParts:
        """The fields of profiles on the same bins (at least one; see
        :meth:`NumericProfile.check_compatible`)."""
        first = parts[0]
        return cls(
            edges=first.edges,
            reference_minimum=first.reference_minimum,
            reference_maximum=first.reference_maximum,
            counts=np.stack([p.counts for p in parts]),
            sums=np.stack([p.sums for p in parts]),
            missing=[p.missing for p in parts],
            below_reference=[p.below_reference for p in parts],
            above_reference=[p.above_reference for p in parts],
            minimum=[p.minimum for p in parts],
            maximum=[p.maximum for p in parts],
            moments=[(p.count, p.mean, p.m2) for p in parts],
            sample=np.concatenate([p.sample for p in parts]),
            sample_keys=np.concatenate([p.sample_keys for p in parts]),
            sample_size=max(p.sample_size for p in parts),
        )

    def merged(self) -> NumericProfile:
        """The profile of the rows of all parts (a new object): the same as merging them one
        by one from the left (counts, sample and extremes exactly; sums and moments added in
        the same order), in one pass: merging the sixty one-minute buckets of an hour costs
        one reservoir selection, not sixty."""
        count, mean, m2 = self.moments[0]
        out = NumericProfile(
            edges=self.edges,
            counts=self.counts.sum(axis=0, dtype=np.int64),
            # Row by row from the first, as merging one by one adds them.
            sums=np.add.accumulate(self.sums, axis=0)[-1].copy(),
            reference_minimum=self.reference_minimum,
            reference_maximum=self.reference_maximum,
            missing=sum(self.missing),
            count=count,
            minimum=min(self.minimum),
            maximum=max(self.maximum),
            mean=mean,
            m2=m2,
            below_reference=sum(self.below_reference),
            above_reference=sum(self.above_reference),
            sample_size=self.sample_size,
        )
        for n, part_mean, part_m2 in self.moments[1:]:
            if n:
                out._merge_moments(n, part_mean, part_m2)
        out.sample, out.sample_keys = _bottom_k(self.sample, self.sample_keys, self.sample_size)
        return out
