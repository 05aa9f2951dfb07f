"""Training data from Prometheus: range queries turned into one table, a column per series.

``driftline anomaly import-prometheus`` asks Prometheus's HTTP API (``/api/v1/query_range``)
for each named query over ``[start, end]`` at ``step``, and joins the answers on their
timestamps: one row per step, a ``timestamp`` column (UTC) and one column per series. A query
that returns one series gives one column named after the query; one that returns several gives
one column per series, named ``name{label="value",…}`` with the labels that tell them apart.
Without queries, the host watcher's gauges are read under the column names of the synthetic
dataset (:data:`HOST_QUERIES`), so the table trains a detector that scores this machine live.

Prometheus answers at most 11,000 points per series and query; longer ranges are fetched in
chunks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import numpy as np
import pandas as pd

from driftline.anomaly.dataset import TIMESTAMP_COLUMN
from driftline.durations import parse_duration
from driftline.errors import ConfigurationError, DataError, DriftlineError

__all__ = [
    "HOST_QUERIES",
    "MAX_POINTS",
    "PrometheusError",
    "Query",
    "build_table",
    "fetch_range",
    "import_prometheus",
    "parse_query",
    "parse_time",
]

#: The host watcher's gauges under the dataset's column names (percentages as 0-100).
HOST_QUERIES: Final[dict[str, str]] = {
    "cpu_percent": "100 * driftline_host_cpu_usage_ratio",
    "memory_percent": "100 * driftline_host_memory_usage_ratio",
    "disk_percent": "100 * driftline_host_disk_usage_ratio",
    "net_rx_bytes_per_s": "driftline_host_network_receive_bytes_per_second",
    "net_tx_bytes_per_s": "driftline_host_network_transmit_bytes_per_second",
}
#: Most points per series Prometheus returns for one range query; a chunk asks for fewer.
MAX_POINTS: Final = 11_000
_CHUNK_POINTS: Final = 10_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")


class PrometheusError(DriftlineError):
    """Prometheus could not be reached or refused a query."""


@dataclass(frozen=True)
class Query:
    """A PromQL expression and the column name it gets."""

    name: str
    promql: str


def parse_query(text: str) -> Query:
    """``name=promql`` → :class:`Query`; a bare metric name names itself.

    >>> parse_query("cpu=100 * rate(x_total[1m])")
    Query(name='cpu', promql='100 * rate(x_total[1m])')
    >>> parse_query('up{job="node"}')
    Query(name='up', promql='up{job="node"}')
    """
    head, sep, tail = text.partition("=")
    if sep and _NAME.fullmatch(head.strip()) and tail.strip() and tail[:1] not in "=~":
        return Query(head.strip(), tail.strip())
    bare = re.match(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{|$)", text)
    if bare is None or not text.strip():
        raise ConfigurationError(
            f"a query is name=PROMQL (e.g. cpu=rate(node_cpu_seconds_total[1m])), got {text!r}"
        )
    return Query(bare.group(1), text.strip())


def parse_time(text: str, *, now: float | None = None) -> float:
    """UNIX seconds of ``now``, ``now-1h`` / ``-30m``, UNIX seconds or an ISO 8601 time (UTC
    unless it says otherwise).

    >>> parse_time("now-90s", now=1_000.0), parse_time("-1m", now=1_000.0)
    (910.0, 940.0)
    >>> parse_time("1700000000"), parse_time("2024-01-01T00:00:00Z")
    (1700000000.0, 1704067200.0)
    >>> parse_time("2024-01-01 01:00")
    1704070800.0
    """
    t = datetime.now(tz=UTC).timestamp() if now is None else now
    value = text.strip()
    relative = re.fullmatch(r"(?:now)?\s*-\s*(.+)", value)
    if value == "now":
        return t
    if relative is not None:
        return t - parse_duration(relative.group(1))
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"time must be 'now', 'now-1h', UNIX seconds or ISO 8601, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _api_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200].strip()}"
    if isinstance(body, Mapping) and body.get("error"):
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return f"HTTP {response.status_code}"


def fetch_range(
    client: httpx.Client,
    url: str,
    query: Query,
    start: float,
    end: float,
    step: float,
) -> list[dict[str, Any]]:
    """The series of one range query (``[{"metric": {...}, "values": [[t, "v"], …]}, …]``),
    fetched in chunks of at most 10,000 steps and concatenated."""
    base = url.rstrip("/")
    chunk = _CHUNK_POINTS * step
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    at = start
    while at <= end:
        stop = min(end, at + chunk - step)
        params = {"query": query.promql, "start": f"{at:.3f}", "end": f"{stop:.3f}",
                  "step": f"{step:g}"}  # fmt: skip
        try:
            response = client.post(f"{base}/api/v1/query_range", data=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {base}: {exc}") from exc
        if response.status_code != 200:
            raise PrometheusError(
                f"Prometheus at {base} refused query {query.name!r} ({query.promql}): "
                f"{_api_error(response)}"
            )
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"{base} did not answer like Prometheus (no JSON from /api/v1/query_range)"
            ) from None
        data = body.get("data") if isinstance(body, Mapping) else None
        if body.get("status") != "success" or not isinstance(data, Mapping):
            raise PrometheusError(f"query {query.name!r} failed: {_api_error(response)}")
        if data.get("resultType") != "matrix":
            raise PrometheusError(
                f"query {query.name!r} gave a {data.get('resultType')}, not a range vector"
            )
        for item in data.get("result", []):
            labels = tuple(sorted((str(k), str(v)) for k, v in item.get("metric", {}).items()))
            entry = series.setdefault(labels, {"metric": dict(labels), "values": []})
            entry["values"].extend(item.get("values", []))
        at = stop + step
    return list(series.values())


def _column_names(name: str, labelsets: Sequence[Mapping[str, str]]) -> list[str]:
    """One name per series: the query's, plus the labels whose values differ between them.

    >>> _column_names("cpu", [{"mode": "user", "job": "n"}, {"mode": "system", "job": "n"}])
    ['cpu{mode="user"}', 'cpu{mode="system"}']
    """
    if len(labelsets) == 1:
        return [name]
    keys = sorted({k for labels in labelsets for k in labels})
    differing = [k for k in keys if len({labels.get(k, "") for labels in labelsets}) > 1]
    out = []
    for labels in labelsets:
        inner = ",".join(f'{k}="{labels.get(k, "")}"' for k in differing)
        out.append(f"{name}{{{inner}}}")
    return out


def _value(text: Any) -> float:
    try:
        return float(text)  # Prometheus sends "NaN", "+Inf", "-Inf" as strings too
    except (TypeError, ValueError):
        return math.nan


def build_table(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    start: float,
    end: float,
    step: float,
    dropna: bool = True,
) -> pd.DataFrame:
    """Join range-query results on their timestamps: a ``timestamp`` column and one column
    per series, one row per step from ``start`` to ``end``.

    ``results`` maps each query's name to its series, in column order. Steps without a value
    are missing; with ``dropna`` rows that miss any value are dropped (Prometheus has no point
    before the first scrape or after a target went away).

    Example
    -------
    >>> results = {
    ...     "cpu": [{"metric": {}, "values": [[0, "10"], [15, "20"], [30, "30"]]}],
    ...     "mem": [{"metric": {}, "values": [[15, "50"], [30, "NaN"]]}],
    ... }
    >>> build_table(results, start=0, end=30, step=15, dropna=False)
                      timestamp   cpu   mem
    0 1970-01-01 00:00:00+00:00  10.0   NaN
    1 1970-01-01 00:00:15+00:00  20.0  50.0
    2 1970-01-01 00:00:30+00:00  30.0   NaN
    >>> len(build_table(results, start=0, end=30, step=15))
    1
    """
    n = math.floor((end - start) / step + 1e-9) + 1
    times = start + step * np.arange(max(n, 0))
    columns: dict[str, np.ndarray] = {}
    for name, series in results.items():
        names = _column_names(name, [s.get("metric", {}) for s in series])
        for column, item in zip(names, series, strict=True):
            values = np.full(len(times), np.nan)
            for t, v in item.get("values", []):
                position = round((float(t) - start) / step)
                if 0 <= position < len(times):
                    values[position] = _value(v)
            columns[column] = values
    frame = pd.DataFrame(columns)
    frame.insert(0, TIMESTAMP_COLUMN, pd.to_datetime(times, unit="s", utc=True))
    frame = frame.replace([np.inf, -np.inf], np.nan)
    if dropna:
        frame = frame.dropna().reset_index(drop=True)
    return frame


def import_prometheus(
    url: str,
    queries: Iterable[Query] | None = None,
    *,
    start: float,
    end: float,
    step: float,
    dropna: bool = True,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
) -> pd.DataFrame:
    """Run every query over ``[start, end]`` at ``step`` and build the training table.

    Parameters
    ----------
    url
        Prometheus's base URL (``http://127.0.0.1:9090``).
    queries
        Named queries, in column order; :data:`HOST_QUERIES` when None.
    start, end
        UNIX seconds.
    step
        Seconds between rows.
    dropna
        Drop rows missing any value.
    timeout
        Seconds per HTTP request.
    client
        An HTTP client to use (one is made and closed when None).

    Raises
    ------
    PrometheusError
        Prometheus is unreachable or refuses a query.
    DataError
        A query has no data in the range, or no row is complete.
    """
    if not step > 0:
        raise ConfigurationError(f"step must be positive, got {step}")
    if not end >= start:
        raise ConfigurationError(f"end must not be before start ({end} < {start})")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"url must start with http:// or https://, got {url!r}")
    chosen = (
        list(queries)
        if queries is not None
        else [Query(name, promql) for name, promql in HOST_QUERIES.items()]
    )
    if not chosen:
        raise ConfigurationError("give at least one query (name=PROMQL)")
    names = [q.name for q in chosen]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigurationError(f"query names must be unique; repeated: {duplicated}")
    own = client is None
    http = client if client is not None else httpx.Client(timeout=timeout)
    try:
        results: dict[str, list[dict[str, Any]]] = {}
        for query in chosen:
            series = fetch_range(http, url, query, start, end, step)
            if not series:
                raise DataError(
                    f"query {query.name!r} ({query.promql}) returned no data between "
                    f"{_iso(start)} and {_iso(end)}"
                )
            results[query.name] = series
    finally:
        if own:
            http.close()
    frame = build_table(results, start=start, end=end, step=step, dropna=dropna)
    if frame.empty:
        raise DataError(
            f"no step between {_iso(start)} and {_iso(end)} has a value for every column; "
            "widen the range or keep incomplete rows"
        )
    return frame


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
