"""Building a training table from Prometheus answers (a scripted HTTP transport; the real
Prometheus is in test_host_watch_cli.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from driftline.anomaly.prometheus import (
    HOST_QUERIES,
    PrometheusError,
    Query,
    import_prometheus,
    parse_query,
    parse_time,
)
from driftline.errors import ConfigurationError, DataError

URL = "http://prometheus.test:9090"


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": labels, "values": [[t, v] for t, v in values]}
                for labels, values in series
            ],
        },
    }


class Scripted:
    """Answers query_range from a function of the form fields; records every request."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        form = dict(httpx.QueryParams(request.content.decode()))
        self.requests.append(form)
        status, body = self.answer(form)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def steps(form: dict[str, str]) -> list[float]:
    start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
    return list(np.arange(start, end + step / 2, step))


def test_queries_become_columns_joined_on_time() -> None:
    def answer(form: dict[str, str]) -> tuple[int, Any]:
        if form["query"] == "up":
            return 200, matrix(({"job": "a"}, [(t, "1") for t in steps(form)]))
        if form["query"].startswith("cpu_seconds"):
            return 200, matrix(
                ({"mode": "user", "job": "n"}, [(t, str(t / 10)) for t in steps(form)]),
                ({"mode": "system", "job": "n"}, [(t, "0.5") for t in steps(form)[1:]]),
            )
        raise AssertionError(form)

    script = Scripted(answer)
    frame = import_prometheus(
        URL,
        [Query("alive", "up"), parse_query("cpu=cpu_seconds_total")],
        start=100.0,
        end=160.0,
        step=15.0,
        client=script.client(),
    )
    assert list(frame.columns) == ["timestamp", "alive", 'cpu{mode="user"}', 'cpu{mode="system"}']
    assert len(frame) == 4, "the first step has no system value and is dropped"
    assert frame["timestamp"].iloc[0].timestamp() == 115.0
    assert frame['cpu{mode="user"}'].tolist() == [11.5, 13.0, 14.5, 16.0]
    assert script.requests[0] == {"query": "up", "start": "100.000", "end": "160.000", "step": "15"}


def test_long_ranges_are_fetched_in_chunks_below_prometheus_point_limit() -> None:
    def answer(form: dict[str, str]) -> tuple[int, Any]:
        points = steps(form)
        assert len(points) <= 11_000
        return 200, matrix(({}, [(t, "2") for t in points]))

    script = Scripted(answer)
    frame = import_prometheus(
        URL, [Query("x", "x")], start=0.0, end=24_999.0, step=1.0, client=script.client()
    )
    assert len(script.requests) == 3 and len(frame) == 25_000
    assert frame["timestamp"].is_monotonic_increasing and (frame["x"] == 2).all()


def test_default_queries_read_the_host_watcher_gauges_as_dataset_columns() -> None:
    script = Scripted(lambda form: (200, matrix(({}, [(t, "1") for t in steps(form)]))))
    frame = import_prometheus(URL, start=0.0, end=10.0, step=5.0, client=script.client())
    assert list(frame.columns) == ["timestamp", *HOST_QUERIES]
    assert [r["query"] for r in script.requests] == list(HOST_QUERIES.values())


def test_prometheus_errors_are_clear() -> None:
    refused = Scripted(
        lambda _form: (
            400,
            {"status": "error", "errorType": "bad_data", "error": "1:6: parse error: unclosed"},
        )
    )
    with pytest.raises(PrometheusError, match=r"refused query 'x' \(rate\(\): bad_data: 1:6"):
        import_prometheus(URL, [Query("x", "rate(")], start=0, end=1, step=1,
                          client=refused.client())  # fmt: skip
    html = Scripted(lambda _form: (200, "<html>not prometheus</html>"))
    with pytest.raises(PrometheusError, match="did not answer like Prometheus"):
        import_prometheus(URL, [Query("x", "x")], start=0, end=1, step=1, client=html.client())
    empty = Scripted(lambda _form: (200, matrix()))
    with pytest.raises(DataError, match=r"query 'x' \(x\) returned no data between"):
        import_prometheus(URL, [Query("x", "x")], start=0, end=1, step=1, client=empty.client())
    nan = Scripted(lambda form: (200, matrix(({}, [(t, "NaN") for t in steps(form)]))))
    with pytest.raises(DataError, match="no step between"):
        import_prometheus(URL, [Query("x", "x")], start=0, end=1, step=1, client=nan.client())
    kept = import_prometheus(URL, [Query("x", "x")], start=0, end=1, step=1, dropna=False,
                             client=nan.client())  # fmt: skip
    assert len(kept) == 2 and kept["x"].isna().all()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(PrometheusError, match="cannot reach Prometheus at http://prometheus"):
        import_prometheus(URL, [Query("x", "x")], start=0, end=1, step=1,
                          client=httpx.Client(transport=httpx.MockTransport(down)))  # fmt: skip


def test_arguments_are_checked() -> None:
    q = [Query("x", "x")]
    with pytest.raises(ConfigurationError, match="step must be positive"):
        import_prometheus(URL, q, start=0, end=1, step=0)
    with pytest.raises(ConfigurationError, match="end must not be before start"):
        import_prometheus(URL, q, start=10, end=1, step=1)
    with pytest.raises(ConfigurationError, match="url must start with http"):
        import_prometheus("127.0.0.1:9090", q, start=0, end=1, step=1)
    with pytest.raises(ConfigurationError, match=r"repeated: \['x'\]"):
        import_prometheus(URL, [*q, *q], start=0, end=1, step=1)
    with pytest.raises(ConfigurationError, match="a query is name=PROMQL"):
        parse_query("100 * x")
    assert parse_query('x{a="b"}') == Query("x", 'x{a="b"}')
    assert parse_query("rate=rate(x_total[5m])") == Query("rate", "rate(x_total[5m])")
    assert parse_time("now", now=50.0) == 50.0
    with pytest.raises(ConfigurationError, match="time must be"):
        parse_time("yesterday")
    assert json.dumps(parse_time("2024-01-01T00:00:00+01:00")) == "1704063600.0"
