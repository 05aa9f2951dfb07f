"""Profiles of a dataset counted per block on Ray Data, merged by addition.

``driftline.compare_datasets(..., engine="ray")`` lays the reference's bins out in the driver
(:func:`driftline.comparison.reference_layout`), then :func:`count_on_ray` reads the files with
``ray.data.read_parquet`` / ``read_csv``, counts every block on those bins with the same
function the single-process path runs on each record batch
(:meth:`driftline.comparison.Part.count`), and merges the block profiles. Counts are integers
added up, so the merged profile counts exactly what the single-process path counts.

Ray connects to the cluster named by ``RAY_ADDRESS`` (or the one already initialised in this
process), otherwise starts a local instance.
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import TYPE_CHECKING, Any

from driftline.comparison import Part, Rows, _Batched
from driftline.errors import DataError
from driftline.on_ray.local import ensure_ray
from driftline.profiles import DatasetProfile, merge_all

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["count_on_ray", "profile_block"]


def profile_block(
    block: pa.Table, *, layout: dict[str, Any], part: Part, what: str
) -> dict[str, list[Any]]:
    """Count one block on the layout's bins; one row holding the profile as JSON."""
    window = DatasetProfile.from_dict(layout).empty_like(seed=None)
    part.count(window, [block.to_pandas()], what)
    return {"profile": [json.dumps(window.to_dict())]}


def count_on_ray(profile: DatasetProfile, part: Part, rows: Rows, what: str) -> DatasetProfile:
    """Count ``rows`` (a dataset of files) into a copy of ``profile`` on Ray Data.

    A :data:`driftline.comparison.ProfileCounter`: ``profile`` is the empty layout (or a
    window on it); the result is it merged with one profile per block.
    """
    if not isinstance(rows, _Batched):
        raise DataError("engine 'ray' reads files or datasets, not in-memory frames")
    ray = ensure_ray()
    data = rows.data
    columns = list(dict.fromkeys(part.raw))
    with warnings.catch_warnings():
        # Ray Data's context copies its own deprecated options (Ray 2.6x): not ours to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")
        if data.format == "parquet":
            ds = ray.data.read_parquet(list(data.paths)).select_columns(columns)
        else:
            ds = ray.data.read_csv(list(data.paths)).select_columns(columns)
        counted = ds.map_batches(
            functools.partial(profile_block, layout=profile.to_dict(), part=part, what=what),
            batch_format="pyarrow",
            batch_size=None,
            zero_copy_batch=True,
        )
        rows_out = counted.take_all()
    blocks = [DatasetProfile.from_dict(json.loads(row["profile"])) for row in rows_out]
    merged = merge_all([profile, *blocks])
    merged.seed = profile.seed
    return merged
