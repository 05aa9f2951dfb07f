"""The profile of a categorical feature: counts over the reference categories plus one
``unseen`` bucket, missing values, and a bounded tally of the unseen names; and the one merge
of categorical profiles (:class:`CategoricalParts`), shared by profile objects and stored
profiles.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from driftline.errors import DataError
from driftline.profiles.encoding import IntArray, decode, encode

__all__ = [
    "DEFAULT_UNSEEN_CAPACITY",
    "CategoricalParts",
    "CategoricalProfile",
    "arrow_strings",
    "arrow_value_counts",
    "merge_tallies",
]

#: Default number of unseen category names tallied per categorical feature.
DEFAULT_UNSEEN_CAPACITY = 20
# Batches up to this many rows map categories with a dict; bigger ones with ``pd.factorize``.
_SMALL_CATEGORICAL = 64


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def merge_tallies(a: Mapping[str, int], b: Mapping[str, int], capacity: int) -> dict[str, int]:
    """Merge two Misra-Gries summaries (Agarwal et al. 2012) keeping ``capacity`` counters."""
    if not b and len(a) <= capacity:
        return dict(sorted(a.items()))
    total: Counter[str] = Counter(a)
    total.update(b)
    if len(total) <= capacity:
        return dict(sorted(total.items()))
    cut = sorted(total.values(), reverse=True)[capacity]
    return dict(sorted((k, v - cut) for k, v in total.items() if v > cut))


def arrow_strings(values: Any) -> Any:
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


def arrow_value_counts(arrow: Any) -> tuple[list[str | None], IntArray]:
    """Distinct values of Arrow strings (None for missing) and how often each occurs."""
    import pyarrow.compute as pc  # noqa: PLC0415 — only for Arrow-backed columns

    found = pc.value_counts(arrow)
    names: list[str | None] = found.field("values").to_pylist()
    return names, np.asarray(found.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)


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
        arrow = arrow_strings(values)
        if arrow is not None:
            names, counts = arrow_value_counts(arrow)
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
                batch = merge_tallies({}, batch, self.unseen_capacity)
            self.unseen_names = merge_tallies(self.unseen_names, batch, self.unseen_capacity)

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
            self.unseen_names = merge_tallies(self.unseen_names, unseen, self.unseen_capacity)

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
                batch = merge_tallies({}, batch, self.unseen_capacity)
            self.unseen_names = merge_tallies(self.unseen_names, batch, self.unseen_capacity)

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
        return CategoricalParts.of_profiles([self, *others]).merged()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": encode(self.counts, "<i8"),
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
            counts=decode(data["counts"], "<i8", "counts"),
            missing=int(data["missing"]),
            unseen_names={str(k): int(v) for k, v in data["unseen_names"].items()},
            unseen_capacity=capacity,
        )
        if p.counts.shape != (len(p.categories) + 1,):
            raise DataError("categorical profile: counts need len(categories) + 1 entries")
        return p


@dataclass(frozen=True)
class CategoricalParts:
    """Categorical profiles over the same categories, side by side field by field in merge
    order: the input of the one merge of categorical profiles, :meth:`merged`.

    Built from profile objects (:meth:`of_profiles`, behind
    :meth:`CategoricalProfile.merge_many`) or decoded straight from stored profiles
    (:func:`driftline.profiles.stored.merge_payloads`): both merge here, so they agree bit for
    bit.
    """

    categories: tuple[str, ...]
    #: A (parts x bins) array.
    counts: IntArray
    missing: Sequence[int]
    unseen_names: Sequence[Mapping[str, int]]
    #: The largest tally capacity among the parts.
    unseen_capacity: int

    @classmethod
    def of_profiles(cls, parts: Sequence[CategoricalProfile]) -> CategoricalParts:
        """The fields of profiles over the same categories (at least one)."""
        return cls(
            categories=parts[0].categories,
            counts=np.stack([p.counts for p in parts]),
            missing=[p.missing for p in parts],
            unseen_names=[p.unseen_names for p in parts],
            unseen_capacity=max(p.unseen_capacity for p in parts),
        )

    def merged(self) -> CategoricalProfile:
        """The profile of the rows of all parts (a new object), as merging them one by one
        from the left (the tallies too: a Misra-Gries merge depends on the order)."""
        tally = self.unseen_names[0]
        for other in self.unseen_names[1:]:
            tally = merge_tallies(tally, other, self.unseen_capacity)
        return CategoricalProfile(
            categories=self.categories,
            counts=self.counts.sum(axis=0, dtype=np.int64),
            missing=sum(self.missing),
            unseen_names=dict(tally),  # a copy: the parts keep theirs
            unseen_capacity=self.unseen_capacity,
        )
