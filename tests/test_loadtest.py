"""`driftline loadtest`: the open-loop schedule, requests drawn from the model's reference, and a
short bounded run against a real `driftline serve` subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.config import Settings
from driftline.errors import ConfigurationError, ValidationError
from driftline.loadtest import (
    RequestGenerator,
    describe_features,
    send_times,
    stored_in_database,
)
from driftline.models.bundle import ModelBundle
from driftline.registry import Registry
from driftline.store import open_store
from tests.support.servers import serve_subprocess


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(1, 500),
    duration=st.floats(1, 20),
    ramp_share=st.floats(0, 1),
)
def test_send_times_ramp_then_hold(rate: float, duration: float, ramp_share: float) -> None:
    ramp = duration * ramp_share
    t = send_times(rate, duration, ramp)
    assert len(t) == round(rate * (duration - ramp / 2))
    assert (np.diff(t) >= -1e-9).all() and (t >= 0).all() and (t < duration + 1e-9).all()
    held = t[t >= ramp]
    if len(held) > 2:  # after the ramp, exactly `rate` per second
        assert np.diff(held) == pytest.approx(1 / rate)
    ramped = t[t < ramp]
    if len(ramped) > 3:  # during the ramp the gaps shrink: the rate rises
        assert np.diff(ramped)[-1] <= np.diff(ramped)[0] + 1e-12


def test_send_times_refuse_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="rate and duration"):
        send_times(0, 10, 0)
    with pytest.raises(ConfigurationError, match="ramp"):
        send_times(10, 10, 11)
    with pytest.raises(ConfigurationError, match="one run sends"):
        send_times(100_000, 3_600, 0)


def test_generated_requests_are_valid_and_follow_the_reference(
    trained_bundle: ModelBundle,
) -> None:
    assert trained_bundle.reference is not None
    reference = trained_bundle.reference
    described = json.loads(json.dumps(describe_features(trained_bundle.schema, reference)))
    assert described["reference_rows"] == len(reference)
    generator = RequestGenerator(described, seed=1)
    records = [generator.record() for _ in range(4_000)]
    for record in records[:500]:  # every record passes the server's own validation
        trained_bundle.schema.validate_record(record)
    frame = pd.DataFrame(records)
    for spec in trained_bundle.schema.features:
        ours, theirs = frame[spec.name], reference[spec.name]
        if spec.kind == "numeric":
            # 21 published quantiles reproduce the distribution closely
            ks = stats.ks_2samp(ours.dropna(), theirs.dropna()).statistic
            assert ks < 0.08, (spec.name, ks)
        else:
            as_type = bool if spec.kind == "boolean" else str
            want = theirs.dropna().astype(as_type).value_counts(normalize=True)
            got = ours.dropna().astype(as_type).value_counts(normalize=True)
            assert got.index[0] == want.index[0]
            assert (got.reindex(want.index, fill_value=0) - want).abs().max() < 0.05, spec.name
        assert ours.isna().mean() == pytest.approx(theirs.isna().mean(), abs=0.03)


def test_without_a_reference_the_schema_ranges_are_used(trained_bundle: ModelBundle) -> None:
    described = describe_features(trained_bundle.schema, None)
    assert all(f["distribution"] is None for f in described["features"])
    generator = RequestGenerator(described, seed=2)
    for _ in range(300):
        record = generator.record()
        trained_bundle.schema.validate_record(record)
        for spec in trained_bundle.schema.features:
            if spec.kind == "numeric" and spec.minimum is not None and record[spec.name]:
                assert spec.minimum <= record[spec.name] <= (spec.maximum or np.inf)
            if spec.kind == "categorical" and spec.categories:
                assert record[spec.name] in spec.categories


def test_an_invalid_generated_record_would_be_caught(trained_bundle: ModelBundle) -> None:
    """The validity check above is not vacuous: a record with a wrong type fails it."""
    described = describe_features(trained_bundle.schema, trained_bundle.reference)
    record = RequestGenerator(described, seed=3).record()
    numeric = next(f.name for f in trained_bundle.schema.features if f.kind == "numeric")
    with pytest.raises(ValidationError):
        trained_bundle.schema.validate_record({**record, numeric: "many"})


@pytest.fixture
def served(settings: Settings, trained_bundle: ModelBundle) -> Iterator[str]:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    with serve_subprocess(settings.home) as url:
        yield url


def _loadtest(*args: str) -> tuple[int, dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "driftline", "loadtest", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    body: dict[str, object] = json.loads(result.stdout)
    return result.returncode, body


@pytest.mark.slow
def test_a_short_run_against_a_real_server(served: str, settings: Settings) -> None:
    schema = httpx.get(f"{served}/schema", timeout=10).json()
    assert schema["version"] == 1 and schema["reference_rows"] > 0
    assert all(f["distribution"] for f in schema["features"])

    code, body = _loadtest(served, "--rate", "40", "--duration", "3", "--seed", "5")
    assert code == 0, body
    assert body["scheduled"] == round(40 * (3 - 0.6 / 2)) == body["sent"] == body["ok"]
    assert body["errors"] == {} and body["not_sent"] == 0
    assert body["all_stored"] is True and body["stored"] == body["ok"]
    assert body["verified_by"] == "GET /predictions"
    latency = body["latency_ms"]
    assert isinstance(latency, dict)
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert isinstance(body["achieved_rate"], float) and body["achieved_rate"] > 0

    # the same check straight against the store, and it would notice a missing prediction
    code, body = _loadtest(
        served, "--rate", "20", "--duration", "2", "--database-url", settings.database_url
    )
    assert code == 0 and body["all_stored"] is True and body["verified_by"] == "database"
    store = open_store(settings.database_url)
    try:
        with store.sessions() as session:
            from sqlalchemy import select

            from driftline.store.tables import Prediction

            ids = set(session.scalars(select(Prediction.request_id)))
    finally:
        store.dispose()
    assert len(ids) == 108 + round(20 * (2 - 0.4 / 2))
    assert stored_in_database(settings.database_url, ids | {"never-sent"}) == ids
    # every stored prediction came from the generator: realistic, accepted, counted by class
    page = httpx.get(f"{served}/predictions", params={"limit": 1000}, timeout=10).json()
    classes = Counter(item["prediction"] for item in page["items"])
    assert sum(classes.values()) == len(ids)


@pytest.mark.slow
def test_errors_make_the_run_fail(served: str) -> None:
    """A target that answers errors (here: a path with no /schema) fails loudly, exit 1."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "loadtest",
            f"{served}/nowhere",
            "--rate",
            "5",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "/schema answered 404" in result.stdout + result.stderr
