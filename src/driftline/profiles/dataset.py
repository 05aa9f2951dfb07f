"""The profile of a set of rows: one numeric or categorical profile per feature, filled by
frames or columns (small batches through stacked arrays), merged by addition (:func:`merge_all`),
written down as a JSON-safe dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from driftline.errors import DataError
from driftline.profiles.categorical import CategoricalProfile
from driftline.profiles.encoding import FORMAT_VERSION, READABLE_FORMATS, FloatArray, float_or
from driftline.profiles.numeric import NumericProfile

__all__ = ["DatasetProfile", "FeatureProfile", "merge_all", "merged_dataset"]

FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile

# Batches with at most this many (rows x numeric features x edges) comparisons are binned in
# one broadcast comparison; bigger ones column by column (:meth:`NumericProfile.add`).
_BROADCAST_LIMIT = 40_000
# Frames up to this many rows are converted to one object block in :meth:`add_frame`.
_SMALL_FRAME = 64


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
        self.ref_min = np.array([float_or(p.reference_minimum, np.nan) for p in profiles])
        self.ref_max = np.array([float_or(p.reference_maximum, np.nan) for p in profiles])
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
    >>> from driftline.profiles import build_reference_profile
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
        if data.get("format") not in READABLE_FORMATS:
            raise DataError(
                f"unsupported profile format {data.get('format')!r}; expected one of "
                f"{READABLE_FORMATS}"
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
    return merged_dataset(features, [p.seed for p in parts], [p.n_rows for p in parts])


def merged_dataset(
    features: Mapping[str, FeatureProfile], seeds: Iterable[int], n_rows: Iterable[int]
) -> DatasetProfile:
    """The merge of dataset profiles given their merged features: rows add up, seeds combine
    (exclusive or, so the merge order does not matter)."""
    seed = 0
    for part_seed in seeds:
        seed ^= part_seed
    return DatasetProfile(features, n_rows=sum(n_rows), seed=seed)
