"""Merging stored profiles (:meth:`DatasetProfile.to_dict` dicts) without a profile object
per payload: each field of a feature is decoded for all payloads at once and handed to the same
merge as profile objects (:class:`~driftline.profiles.numeric.NumericParts`,
:class:`~driftline.profiles.categorical.CategoricalParts`). A window check reads its sixty
one-minute buckets this way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from driftline.errors import DataError
from driftline.profiles.categorical import CategoricalParts
from driftline.profiles.dataset import DatasetProfile, FeatureProfile, merge_all, merged_dataset
from driftline.profiles.encoding import (
    FORMAT_VERSION,
    UnusualPayloadError,
    decode,
    decode_rows,
    float_or,
)
from driftline.profiles.numeric import NumericParts, check_bins, empty_float

__all__ = ["merge_payloads"]


def merge_payloads(payloads: Iterable[Mapping[str, Any]]) -> DatasetProfile:
    """Merge stored profiles (:meth:`DatasetProfile.to_dict` dicts, at least one) into one.

    The same result as ``merge_all([DatasetProfile.from_dict(d) for d in payloads])``, bit for
    bit, without building a profile object per payload and feature: each feature's arrays are
    decoded for all payloads at once (one ``fromhex`` over the joined strings) and merged as
    profile objects are merged (:meth:`NumericParts.merged`, :meth:`CategoricalParts.merged`).

    Payloads of profile format 2 with the same features, bins and categories take this path;
    anything else (format 1 lists, differing edges, corrupt arrays...) goes through
    :meth:`DatasetProfile.from_dict` and :func:`merge_all`, which give their usual result or
    error.

    Example
    -------
    >>> import numpy as np
    >>> from driftline.profiles import NumericProfile
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
        return _merge_directly(parts)
    except (UnusualPayloadError, DataError, KeyError, TypeError, ValueError, AttributeError):
        return merge_all(DatasetProfile.from_dict(d) for d in parts)


def _merge_directly(parts: Sequence[Mapping[str, Any]]) -> DatasetProfile:
    names = list(parts[0]["features"])
    for data in parts:
        if data.get("format") != FORMAT_VERSION or list(data["features"]) != names:
            raise UnusualPayloadError
    features: dict[str, FeatureProfile] = {}
    for name in names:
        specs = [data["features"][name] for data in parts]
        kind = specs[0]["kind"]
        if any(spec["kind"] != kind for spec in specs):
            raise UnusualPayloadError
        if kind == "numeric":
            features[name] = _numeric_parts(specs).merged()
        elif kind == "categorical":
            features[name] = _categorical_parts(specs).merged()
        else:
            raise UnusualPayloadError
    return merged_dataset(
        features, [int(data["seed"]) for data in parts], [int(data["n_rows"]) for data in parts]
    )


def _numeric_parts(specs: Sequence[Mapping[str, Any]]) -> NumericParts:
    """The fields of stored numeric profiles on the same bins, checked as
    :meth:`NumericProfile.from_dict` checks them."""
    first = specs[0]
    edges_text = first["edges"]
    ref_range = (first.get("reference_minimum"), first.get("reference_maximum"))
    for spec in specs:
        if (
            spec["edges"] != edges_text
            or (spec.get("reference_minimum"), spec.get("reference_maximum")) != ref_range
        ):
            raise UnusualPayloadError
    if type(edges_text) is not str:
        raise UnusualPayloadError
    edges = decode(edges_text, "<f8", "edges")
    sizes = [int(spec["sample_size"]) for spec in specs]
    try:
        check_bins(edges, min(sizes))
    except DataError:
        raise UnusualPayloadError from None
    width = len(edges) + 1
    samples, keys = [], []
    for spec, size in zip(specs, sizes, strict=True):
        sample, sample_keys = spec["sample"], spec["sample_keys"]
        if type(sample) is not str or type(sample_keys) is not str:
            raise UnusualPayloadError
        if sample or sample_keys:  # a bucket stored with a reservoir (before window buckets
            # kept none): checked and decoded as from_dict does
            if len(sample) != len(sample_keys) or len(sample) % 16 or len(sample) > 16 * size:
                raise UnusualPayloadError
            samples.append(sample)
            keys.append(sample_keys)
    values, value_keys = empty_float(), empty_float()
    if samples:
        values = decode("".join(samples), "<f8", "sample")
        value_keys = decode("".join(keys), "<f8", "sample_keys")
        if len(values) != len(value_keys) or 16 * len(values) != sum(map(len, samples)):
            raise UnusualPayloadError
    return NumericParts(
        edges=edges,
        reference_minimum=ref_range[0],
        reference_maximum=ref_range[1],
        counts=decode_rows(specs, "counts", "<i8", width),
        sums=decode_rows(specs, "sums", "<f8", width),
        missing=[int(spec["missing"]) for spec in specs],
        below_reference=[int(spec["below_reference"]) for spec in specs],
        above_reference=[int(spec["above_reference"]) for spec in specs],
        minimum=[float_or(spec.get("minimum"), math.inf) for spec in specs],
        maximum=[float_or(spec.get("maximum"), -math.inf) for spec in specs],
        moments=[(int(spec["count"]), float(spec["mean"]), float(spec["m2"])) for spec in specs],
        sample=values,
        sample_keys=value_keys,
        sample_size=max(sizes),
    )


def _categorical_parts(specs: Sequence[Mapping[str, Any]]) -> CategoricalParts:
    """The fields of stored categorical profiles over the same categories, checked as
    :meth:`CategoricalProfile.from_dict` checks them."""
    names = specs[0]["categories"]
    for spec in specs:
        if spec["categories"] != names:
            raise UnusualPayloadError
    capacities = [int(spec["unseen_capacity"]) for spec in specs]
    if min(capacities) < 0:
        raise UnusualPayloadError
    categories = tuple(map(str, names))  # distinct ones: CategoricalProfile checks that
    return CategoricalParts(
        categories=categories,
        counts=decode_rows(specs, "counts", "<i8", len(categories) + 1),
        missing=[int(spec["missing"]) for spec in specs],
        unseen_names=[{str(k): int(v) for k, v in spec["unseen_names"].items()} for spec in specs],
        unseen_capacity=max(capacities),
    )
