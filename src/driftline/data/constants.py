"""Names and defaults of the data layer that the CLI shows in its help: light on purpose (no
NumPy, no pandas), so that `driftline --help` does not load them."""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["DEFAULT_BATCH_ROWS", "DRIFT_KINDS", "DriftKind"]

#: Rows per record batch when a dataset is read in batches.
DEFAULT_BATCH_ROWS: Final = 131_072

DriftKind = Literal[
    "mean_shift",
    "variance_change",
    "new_category",
    "category_mix",
    "missing_rate",
    "outliers",
    "concept",
]
DRIFT_KINDS: tuple[str, ...] = get_args(DriftKind)
