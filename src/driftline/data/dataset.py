"""Tables larger than memory: a CSV or Parquet file, a directory of them, or a glob.

:func:`open_dataset` resolves the location to its files; a :class:`Dataset` reads them with
``pyarrow.dataset`` in record batches (bounded memory: one batch at a time) or one column at a
time, and converts each piece to pandas exactly as :func:`driftline.data.io.read_table` reads a
whole file, so a dataset read in pieces holds the same values as the same rows read at once.

Profiles only count strings, so the profile builders ask for ``arrow_strings=True``: string
columns then stay Arrow arrays inside the pandas frame (``pd.ArrowDtype``; Parquet's
dictionary-encoded strings are read as dictionaries, not decoded), instead of one Python
``str`` per row. At 1M rows x 5 string columns that cut reading and counting a file's
categories from ~1.2 s to ~0.25 s (``benchmarks/drift_speed.py``); the values are the same.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from driftline.data.constants import DEFAULT_BATCH_ROWS
from driftline.errors import DataError
from driftline.schema import FeatureSchema, FeatureSpec

if TYPE_CHECKING:
    import pyarrow.dataset as pads

__all__ = ["DEFAULT_BATCH_ROWS", "Dataset", "open_dataset"]

_FORMATS: dict[str, Literal["csv", "parquet"]] = {
    ".csv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Dataset:
    """The files of one table, all CSV or all Parquet, read piece by piece.

    Parameters
    ----------
    location
        What the user named (file, directory or glob), for messages.
    paths
        The files, sorted.
    format
        ``"csv"`` or ``"parquet"``.
    """

    location: str
    paths: tuple[str, ...]
    format: Literal["csv", "parquet"]

    def arrow(self, dictionary_columns: Sequence[str] = ()) -> pads.Dataset:
        """The ``pyarrow.dataset`` over the files; Parquet ``dictionary_columns`` are read as
        dictionary arrays (no decoding of repeated strings)."""
        import pyarrow.dataset as pads  # noqa: PLC0415 — pyarrow only when files are read

        fmt: str | pads.FileFormat = self.format
        if dictionary_columns and self.format == "parquet":
            options = pads.ParquetReadOptions(dictionary_columns=list(dictionary_columns))
            fmt = pads.ParquetFileFormat(read_options=options)
        try:
            return pads.dataset(list(self.paths), format=fmt)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise DataError(f"cannot read {self.location}: {exc}") from exc

    @property
    def columns(self) -> list[str]:
        return list(self.arrow().schema.names)

    def infer_schema(self, exclude: Sequence[str] = ()) -> FeatureSchema:
        """Feature kinds from the column types: numbers numeric, booleans boolean, the rest
        categorical (as :func:`driftline.schema.infer_schema` decides on a data frame)."""
        import pyarrow as pa  # noqa: PLC0415 — pyarrow only when files are read

        specs = []
        for field in self.arrow().schema:
            if field.name in exclude:
                continue
            t = field.type
            kind: Literal["numeric", "categorical", "boolean"]
            if pa.types.is_boolean(t):
                kind = "boolean"
            elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
                kind = "numeric"
            else:
                kind = "categorical"
            specs.append(FeatureSpec(name=field.name, kind=kind, nullable=True))
        if not specs:
            raise DataError(f"{self.location} has no feature columns")
        return FeatureSchema(features=tuple(specs))

    def check_columns(self, names: Sequence[str], what: str) -> None:
        have = set(self.columns)
        missing = [n for n in names if n not in have]
        if missing:
            raise DataError(f"{what} data lacks column(s) {missing}")

    def batches(
        self,
        columns: Sequence[str],
        batch_rows: int = DEFAULT_BATCH_ROWS,
        *,
        arrow_strings: bool = False,
    ) -> Iterator[pd.DataFrame]:
        """The rows of ``columns`` as data frames of at most ``batch_rows`` rows, in file order;
        with ``arrow_strings`` string columns are ``pd.ArrowDtype`` (see the module doc)."""
        if batch_rows < 1:
            raise DataError(f"batch_rows must be >= 1, got {batch_rows}")
        dataset, types = self._reader(columns, arrow_strings)
        # Read ahead one batch and one file, and decode Parquet on this thread: Arrow's
        # defaults (16 batches, 4 files, a thread pool) held 1.75 GB at the peak of a 10M-row
        # count of 25 columns, 0.69 GB this way, for no loss in a single-threaded count.
        # CSV keeps its threads: parsing text is the cost there.
        scanner = dataset.scanner(
            columns=list(columns),
            batch_size=batch_rows,
            batch_readahead=1,
            fragment_readahead=1,
            use_threads=self.format == "csv",
        )
        try:
            for batch in scanner.to_batches():
                if batch.num_rows:
                    yield batch.to_pandas(types_mapper=types)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {self.location}: {exc}") from exc

    def read(self, columns: Sequence[str], *, arrow_strings: bool = False) -> pd.DataFrame:
        """All rows of ``columns`` at once (call it with one column at a time for large data);
        ``arrow_strings`` as in :meth:`batches`."""
        dataset, types = self._reader(columns, arrow_strings)
        try:
            table = dataset.to_table(columns=list(columns))
            frame: pd.DataFrame = table.to_pandas(types_mapper=types)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {self.location}: {exc}") from exc
        return frame

    def _reader(
        self, columns: Sequence[str], arrow_strings: bool
    ) -> tuple[pads.Dataset, Callable[[Any], Any] | None]:
        """The Arrow dataset to read ``columns`` from, and the ``types_mapper`` of
        ``to_pandas``: None (pandas' own conversion), or one that keeps strings in Arrow."""
        if not arrow_strings:
            return self.arrow(), None
        import pyarrow as pa  # noqa: PLC0415 — pyarrow only when files are read

        plain = self.arrow()
        wanted = set(columns)
        strings = [f.name for f in plain.schema if f.name in wanted and _is_string(pa, f.type)]
        # Only string columns need the dictionary reader (a numeric column read as before).
        dataset = self.arrow(dictionary_columns=strings) if strings else plain
        return dataset, _arrow_string_mapper(pa)


def _is_string(pa: Any, arrow_type: Any) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _arrow_string_mapper(pa: Any) -> Callable[[Any], Any]:
    def mapper(arrow_type: Any) -> Any:
        return pd.ArrowDtype(arrow_type) if _is_string(pa, arrow_type) else None

    return mapper


def open_dataset(location: str | Path) -> Dataset:
    """The dataset at ``location``: a CSV or Parquet file, a directory (every CSV or Parquet
    file under it, recursively) or a glob pattern.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     _ = pd.DataFrame({"x": [i, i + 0.5]}).to_parquet(folder / f"part-{i}.parquet")
    >>> data = open_dataset(folder)
    >>> len(data.paths), data.format, sum(len(b) for b in data.batches(["x"]))
    (3, 'parquet', 6)
    """
    text = str(location)
    path = Path(text)
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
    elif path.is_file():
        found = [text]
    elif glob.has_magic(text):
        found = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
    else:
        raise DataError(f"no such file, directory or glob match: {text}")
    if not found:
        raise DataError(f"{text}: no .csv or .parquet files")
    kinds = {_kind(Path(p)) for p in found}
    if None in kinds:
        bad = next(p for p in found if _kind(Path(p)) is None)
        raise DataError(f"{bad}: unknown file type {Path(bad).suffix!r}; use .csv or .parquet")
    if len(kinds) > 1:
        raise DataError(f"{text} mixes CSV and Parquet files; use one format")
    fmt = kinds.pop()
    assert fmt is not None
    return Dataset(location=text, paths=tuple(found), format=fmt)


def _kind(path: Path) -> Literal["csv", "parquet"] | None:
    return _FORMATS.get(path.suffix.lower())
