"""A load test anyone can point at a deployment: ``driftline loadtest URL --rate R --duration D``.

Requests are generated from the served model's schema (``GET /schema``): each numeric feature
is drawn from the quantiles of the model's training reference, each categorical or boolean one
from its reference frequencies, missing values at their reference rate — realistic marginals,
no training rows. The load is *open-loop*: request ``i`` is sent at its scheduled time whether
or not earlier ones have been answered (a slow server does not slow the client down, which
would hide the slowness: "coordinated omission"), and latency is measured from the scheduled
time. The rate ramps linearly from 0 to ``rate`` over ``ramp`` seconds, then holds.

Afterwards every acknowledged prediction (a 200 with its request id) is looked up in the store,
through ``GET /predictions`` or directly with a database URL, so the run also says whether
anything acknowledged was lost.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd

from driftline.errors import ConfigurationError
from driftline.schema import FeatureSchema

__all__ = [
    "LoadtestOptions",
    "LoadtestResult",
    "RequestGenerator",
    "describe_features",
    "run_loadtest",
    "send_times",
]

#: Probabilities at which a numeric feature's reference quantiles are published.
QUANTILE_PROBS: tuple[float, ...] = tuple(i / 20 for i in range(21))
#: Most values published per categorical feature (the rest share the remaining frequency).
TOP_VALUES = 50
#: Most requests one run may send.
MAX_REQUESTS = 2_000_000


def _json_number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def describe_features(schema: FeatureSchema, reference: pd.DataFrame | None) -> dict[str, Any]:
    """The schema with, per feature, a summary of its reference distribution (quantiles or
    frequencies, and the missing share) from which realistic requests can be drawn.

    >>> from driftline.schema import infer_schema
    >>> frame = pd.DataFrame(
    ...     {"x": [1.0, 2.0, 3.0, None], "c": ["a", "a", "b", "a"], "y": [0, 1, 0, 1]}
    ... )
    >>> out = describe_features(infer_schema(frame, target="y"), frame)
    >>> [f["name"] for f in out["features"]], out["reference_rows"]
    (['x', 'c'], 4)
    >>> x, c = out["features"]
    >>> x["distribution"]["missing"], x["distribution"]["quantiles"][::20]
    (0.25, [1.0, 3.0])
    >>> c["distribution"]
    {'missing': 0.0, 'values': ['a', 'b'], 'frequencies': [0.75, 0.25]}
    """
    data = schema.to_dict()
    rows = 0 if reference is None else len(reference)
    features = []
    for spec, spec_dict in zip(schema.features, data["features"], strict=True):
        entry = {**spec_dict, "distribution": None}
        if reference is not None and rows and spec.name in reference.columns:
            column = reference[spec.name]
            present = column.dropna()
            distribution: dict[str, Any] = {"missing": float(1 - len(present) / rows)}
            if len(present) == 0:
                pass
            elif spec.kind == "numeric":
                quantiles = np.quantile(present.to_numpy(dtype=float), QUANTILE_PROBS)
                distribution["quantiles"] = [_json_number(q) for q in quantiles]
            else:
                counts = present.astype(str if spec.kind == "categorical" else bool).value_counts()
                top = counts.head(TOP_VALUES)
                distribution["values"] = [
                    str(v) if spec.kind == "categorical" else bool(v) for v in top.index
                ]
                distribution["frequencies"] = [float(n / len(present)) for n in top.to_numpy()]
            entry["distribution"] = distribution
        features.append(entry)
    return {**data, "features": features, "reference_rows": rows}


class RequestGenerator:
    """Feature records drawn from a :func:`describe_features` payload (seeded).

    Example
    -------
    >>> described = {"features": [
    ...     {"name": "x", "kind": "numeric", "nullable": False, "integer": True,
    ...      "minimum": 0, "maximum": 9, "categories": [],
    ...      "distribution": {"missing": 0.0, "quantiles": [0.0, 5.0, 9.0]}},
    ...     {"name": "c", "kind": "categorical", "nullable": True, "integer": False,
    ...      "minimum": None, "maximum": None, "categories": ["a", "b"], "distribution": None},
    ... ]}
    >>> gen = RequestGenerator(described, seed=0)
    >>> gen.names
    ('x', 'c')
    >>> rows = [gen.record() for _ in range(200)]
    >>> all(0 <= r["x"] <= 9 and r["x"] == int(r["x"]) for r in rows)
    True
    >>> sorted({r["c"] for r in rows})
    ['a', 'b']
    """

    def __init__(self, described: Mapping[str, Any], *, seed: int = 0) -> None:
        self.features: list[dict[str, Any]] = list(described["features"])
        if not self.features:
            raise ConfigurationError("the model's schema has no features")
        self.rng = np.random.default_rng(seed)
        self._draws: list[Callable[[], Any]] = [self._drawer(f) for f in self.features]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.features)

    def _drawer(self, feature: Mapping[str, Any]) -> Callable[[], Any]:
        rng = self.rng
        dist = feature.get("distribution") or {}
        missing = float(dist.get("missing", 0.0)) if feature.get("nullable") else 0.0
        kind = feature["kind"]
        draw: Callable[[], Any]
        if kind == "numeric":
            quantiles = [q for q in dist.get("quantiles") or [] if q is not None]
            integer = bool(feature.get("integer"))
            if len(quantiles) >= 2:
                probs = np.linspace(0.0, 1.0, len(quantiles))
                qs = np.asarray(quantiles, dtype=float)

                def draw_numeric() -> Any:
                    value = float(np.interp(rng.random(), probs, qs))
                    return round(value) if integer else value

                draw = draw_numeric
            else:
                low = _json_number(feature.get("minimum"))
                high = _json_number(feature.get("maximum"))
                low = 0.0 if low is None else low
                high = low + 1.0 if high is None or high < low else high

                def draw_uniform() -> Any:
                    value = float(rng.uniform(low, high))
                    return round(value) if integer else value

                draw = draw_uniform
        else:
            values = list(dist.get("values") or [])
            if values:
                weights = np.asarray(dist["frequencies"], dtype=float)
                weights = weights / weights.sum()
            elif kind == "boolean":
                values, weights = [False, True], np.array([0.5, 0.5])
            else:
                values = list(feature.get("categories") or []) or ["unknown"]
                weights = np.full(len(values), 1.0 / len(values))

            def draw_choice() -> Any:
                return values[int(rng.choice(len(values), p=weights))]

            draw = draw_choice
        if missing <= 0.0:
            return draw

        def draw_maybe_missing() -> Any:
            return None if rng.random() < missing else draw()

        return draw_maybe_missing

    def record(self) -> dict[str, Any]:
        return {name: draw() for name, draw in zip(self.names, self._draws, strict=True)}


def send_times(rate: float, duration: float, ramp: float) -> np.ndarray:
    """Scheduled send times (seconds from the start) of an open-loop run whose rate rises
    linearly from 0 to ``rate`` over ``ramp`` seconds and then holds until ``duration``.

    >>> send_times(10, 2, 0).tolist()[:3], len(send_times(10, 2, 0))
    ([0.0, 0.1, 0.2], 20)
    >>> t = send_times(100, 3, 2)
    >>> len(t), bool((t[:100] < 2).all()), bool((t[100:] >= 2).all())
    (200, True, True)
    """
    if rate <= 0 or duration <= 0:
        raise ConfigurationError(f"rate and duration must be > 0, got {rate} and {duration}")
    if not 0 <= ramp <= duration:
        raise ConfigurationError(f"ramp must be in [0, duration], got {ramp}")
    total = round(rate * (duration - ramp / 2))
    if total > MAX_REQUESTS:
        raise ConfigurationError(f"{total} requests is more than the {MAX_REQUESTS} one run sends")
    i = np.arange(total, dtype=float)
    in_ramp = rate * ramp / 2  # requests sent during the ramp: the area under it
    ramp_times = np.sqrt(2 * ramp * np.minimum(i, in_ramp) / rate) if ramp > 0 else i * 0
    return np.where(i < in_ramp, ramp_times, ramp + (i - in_ramp) / rate)


@dataclass(frozen=True)
class LoadtestOptions:
    """How to run: target ``rate`` (requests/s) for ``duration`` seconds after a linear
    ``ramp``; at most ``max_in_flight`` requests outstanding (beyond that a scheduled request
    is counted as ``not_sent``, never delayed); ``timeout`` per request."""

    rate: float
    duration: float
    ramp: float = 0.0
    max_in_flight: int = 2_000
    timeout: float = 10.0
    seed: int = 0
    token: str | None = None
    read_token: str | None = None
    verify: bool = True
    verify_timeout: float = 30.0


@dataclass
class LoadtestResult:
    """What a run measured. Latency percentiles are milliseconds from each request's scheduled
    send time, over the requests scheduled after the ramp (the steady phase)."""

    url: str
    model_version: int | None
    target_rate: float
    duration: float
    ramp: float
    scheduled: int
    sent: int
    not_sent: int
    ok: int
    errors: dict[str, int]
    achieved_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    client_lag_p99_ms: float
    stored: int | None = None
    missing: list[str] = field(default_factory=list)
    verified_by: str | None = None

    @property
    def all_stored(self) -> bool | None:
        return None if self.stored is None else not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model_version": self.model_version,
            "target_rate": self.target_rate,
            "duration": self.duration,
            "ramp": self.ramp,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "not_sent": self.not_sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "achieved_rate": self.achieved_rate,
            "latency_ms": {
                "p50": self.p50_ms,
                "p95": self.p95_ms,
                "p99": self.p99_ms,
                "max": self.max_ms,
            },
            "client_lag_p99_ms": self.client_lag_p99_ms,
            "stored": self.stored,
            "missing": self.missing[:100],
            "missing_count": len(self.missing),
            "all_stored": self.all_stored,
            "verified_by": self.verified_by,
        }


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


async def fetch_schema(client: httpx.AsyncClient, url: str, token: str | None) -> dict[str, Any]:
    response = await client.get(f"{url}/schema", headers=_headers(token))
    if response.status_code != 200:
        raise ConfigurationError(
            f"GET {url}/schema answered {response.status_code}: {response.text[:200]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def stored_via_api(
    client: httpx.AsyncClient,
    url: str,
    ids: set[str],
    *,
    start: float,
    token: str | None,
) -> set[str]:
    """Which of ``ids`` ``GET /predictions`` returns among the predictions since ``start``."""
    found: set[str] = set()
    offset: int | None = 0
    while offset is not None:
        response = await client.get(
            f"{url}/predictions",
            params={"start": start, "limit": 1000, "offset": offset},
            headers=_headers(token),
        )
        response.raise_for_status()
        page = response.json()
        found.update(item["request_id"] for item in page["items"] if item["request_id"] in ids)
        offset = page["next_offset"]
    return found


def stored_in_database(database_url: str, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the store at ``database_url`` holds."""
    from sqlalchemy import select  # noqa: PLC0415 — only with --database-url

    from driftline.store import open_store  # noqa: PLC0415 — only with --database-url
    from driftline.store.tables import Prediction  # noqa: PLC0415 — only with --database-url

    store = open_store(database_url, migrate=False)
    found: set[str] = set()
    try:
        wanted = sorted(ids)
        with store.sessions() as session:
            for i in range(0, len(wanted), 1000):
                chunk = wanted[i : i + 1000]
                found.update(
                    session.scalars(
                        select(Prediction.request_id).where(Prediction.request_id.in_(chunk))
                    )
                )
    finally:
        store.dispose()
    return found


async def run_loadtest(
    url: str,
    options: LoadtestOptions,
    *,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadtestResult:
    """Run one open-loop load test against the driftline API at ``url``."""
    url = url.rstrip("/")
    times = send_times(options.rate, options.duration, options.ramp)
    run_id = uuid.uuid4().hex[:10]
    limits = httpx.Limits(
        max_connections=options.max_in_flight, max_keepalive_connections=options.max_in_flight
    )
    async with httpx.AsyncClient(timeout=options.timeout, limits=limits) as client:
        described = await fetch_schema(client, url, options.read_token or options.token)
        generator = RequestGenerator(described, seed=options.seed)
        # every request body up front, so that generating them never delays a send
        bodies = [
            {"request_id": f"loadtest-{run_id}-{i}", "features": generator.record()}
            for i in range(len(times))
        ]
        headers = _headers(options.token)
        latencies: list[float] = []
        acked: set[str] = set()
        errors: Counter[str] = Counter()
        lags: list[float] = []
        in_flight = 0
        not_sent = 0
        done_times: list[float] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one(i: int, scheduled: float) -> None:
            nonlocal in_flight
            try:
                response = await client.post(f"{url}/predict", json=bodies[i], headers=headers)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                return
            finally:
                in_flight -= 1
            finished = time.perf_counter()
            if response.status_code == 200:
                acked.add(str(response.json()["request_id"]))
                done_times.append(finished - start)
                if times[i] >= options.ramp:
                    latencies.append((finished - scheduled) * 1000)
            else:
                errors[f"HTTP {response.status_code}"] += 1

        if progress is not None:
            progress(f"{len(times)} requests over {options.duration:g} s")
        wall_start = time.time()
        start = time.perf_counter()
        for i, offset in enumerate(times):
            scheduled = start + float(offset)
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, (time.perf_counter() - scheduled) * 1000))
            if in_flight >= options.max_in_flight:
                not_sent += 1
                continue
            in_flight += 1
            task = asyncio.create_task(one(i, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=options.timeout + 5)
        steady = options.duration - options.ramp
        in_steady = [t for t in done_times if options.ramp <= t <= options.duration]
        achieved = len(in_steady) / steady if steady > 0 else len(done_times) / options.duration
        result = LoadtestResult(
            url=url,
            model_version=described.get("version"),
            target_rate=options.rate,
            duration=options.duration,
            ramp=options.ramp,
            scheduled=len(times),
            sent=len(times) - not_sent,
            not_sent=not_sent,
            ok=len(acked),
            errors=dict(errors),
            achieved_rate=achieved,
            p50_ms=_percentile(latencies, 50),
            p95_ms=_percentile(latencies, 95),
            p99_ms=_percentile(latencies, 99),
            max_ms=max(latencies) if latencies else None,
            client_lag_p99_ms=_percentile(lags, 99) or 0.0,
        )
        if options.verify and acked:
            if progress is not None:
                progress(f"checking that {len(acked)} acknowledged predictions were stored")
            found: set[str] = set()
            deadline = time.monotonic() + options.verify_timeout
            while True:  # the writer makes a prediction durable within its flush interval
                if database_url is not None:
                    found = await asyncio.to_thread(stored_in_database, database_url, acked)
                else:
                    found = await stored_via_api(
                        client, url, acked, start=wall_start - 5, token=options.read_token
                    )
                if found >= acked or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
            result.stored = len(found)
            result.missing = sorted(acked - found)
            result.verified_by = "database" if database_url is not None else "GET /predictions"
    return result
