"""Reading and writing tables (CSV or Parquet, chosen by file extension)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from driftline.errors import DataError

__all__ = ["read_table", "write_table"]

_CSV = {".csv", ".txt"}
_PARQUET = {".parquet", ".pq"}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a clear :class:`DataError` when it cannot be."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in _PARQUET:
            return pd.read_parquet(path)
        if suffix in _CSV:
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    raise DataError(f"{path}: unknown file type {suffix!r}; use .csv or .parquet")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV or Parquet by the extension of ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        frame.to_parquet(path, index=False)
    elif suffix in _CSV:
        frame.to_csv(path, index=False)
    else:
        raise DataError(f"{path}: unknown file type {suffix!r}; use .csv or .parquet")
    return path
