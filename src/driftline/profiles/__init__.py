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

The modules, each importing only those listed before it:

* ``encoding`` -- arrays as hex-encoded little-endian bytes (profile format 2);
* ``numeric``, ``categorical`` -- the two feature profiles, each with its one merge
  (:class:`~driftline.profiles.numeric.NumericParts`,
  :class:`~driftline.profiles.categorical.CategoricalParts`) that profile objects and stored
  profiles share;
* ``dataset`` -- :class:`DatasetProfile` (a profile per feature) and :func:`merge_all`;
* ``stored`` -- :func:`merge_payloads`, the merge of stored dicts without an object per dict;
* ``build`` -- reference profiles from training data; ``outputs`` -- profiles of model outputs.
"""

from __future__ import annotations

from driftline.profiles.build import (
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    build_reference_profile,
    category_counts,
    profile_columns,
    quantile_edges,
    reference_bins,
    reference_profile,
    value_counts,
)
from driftline.profiles.categorical import DEFAULT_UNSEEN_CAPACITY, CategoricalProfile
from driftline.profiles.dataset import DatasetProfile, FeatureProfile, merge_all

# Pickles made while the profiles were one module name the classes ``driftline.profiles.<name>``
# (re-exported here), a profile with rows still in its stacked arrays this helper too.
from driftline.profiles.dataset import _NumericState as _NumericState
from driftline.profiles.encoding import FORMAT_VERSION
from driftline.profiles.numeric import DEFAULT_SAMPLE_SIZE, NumericProfile
from driftline.profiles.outputs import PREDICTION, SCORE, build_output_profile, output_columns
from driftline.profiles.stored import merge_payloads

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_MAX_CATEGORIES",
    "DEFAULT_SAMPLE_SIZE",
    "DEFAULT_UNSEEN_CAPACITY",
    "FORMAT_VERSION",
    "PREDICTION",
    "SCORE",
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
    "quantile_edges",
    "reference_bins",
    "reference_profile",
    "value_counts",
]
