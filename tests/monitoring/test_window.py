from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from driftline.data import TARGET, generate_loans
from driftline.monitoring import window
from driftline.monitoring.monitor import MonitorOptions, build_report
from driftline.monitoring.reference import reference_for
from driftline.monitoring.window import WindowRecorder, quantile_from_histogram, summarize
from tests.monitoring.conftest import drifted, plain


def validated(bundle: Any, frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        bundle.schema.validate_record({k: plain(v) for k, v in r.items() if k != TARGET})
        for r in frame.to_dict("records")
    ]


def records(bundle: Any, n: int, seed: int) -> list[dict[str, Any]]:
    return validated(bundle, generate_loans(n, seed=seed))


def test_buckets_from_two_workers_merge_to_the_whole(loan_bundle: Any) -> None:
    loan_bundle.version = 1
    rows = records(loan_bundle, 600, seed=3)
    one = WindowRecorder(worker_id="one", bucket_seconds=60)
    a = WindowRecorder(worker_id="a", bucket_seconds=60)
    b = WindowRecorder(worker_id="b", bucket_seconds=60)
    for start in range(0, 600, 50):
        part = rows[start : start + 50]
        predictions = loan_bundle.predict_records(part)
        one.observe(loan_bundle, part, predictions, now=120.0)
        (a if start % 100 == 0 else b).observe(loan_bundle, part, predictions, now=120.0)
    whole = summarize([r["payload"] for r in one.drain(now=121.0)])
    split = summarize([r["payload"] for r in a.drain(now=121.0) + b.drain(now=121.0)])
    assert whole.rows == split.rows == 600
    for name, profile in whole.features.features.items():  # type: ignore[union-attr]
        other = split.features.features[name]  # type: ignore[union-attr]
        assert profile.counts.tolist() == other.counts.tolist()
        assert profile.missing == other.missing
    assert whole.sketch is not None and split.sketch is not None
    assert whole.sketch.equals(split.sketch, rtol=1e-9)


def test_two_bundle_objects_of_one_version_in_one_bucket_are_both_counted(
    loan_bundle: Any,
) -> None:
    """Right after a promotion the same version answers as two objects (the canary's and the
    reloaded champion's). Observing both in one bucket once deadlocked the recorder."""
    import copy
    import threading

    loan_bundle.version = 1
    twin = copy.copy(loan_bundle)  # another object, same version
    rows = records(loan_bundle, 300, seed=4)
    recorder = WindowRecorder(worker_id="w", bucket_seconds=60)

    def observe_alternately() -> None:
        for n, start in enumerate(range(0, 300, 50)):
            part = rows[start : start + 50]
            bundle = loan_bundle if n % 2 == 0 else twin
            recorder.observe(bundle, part, bundle.predict_records(part), now=120.0)

    worker = threading.Thread(target=observe_alternately, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the recorder deadlocked"
    summary = summarize([r["payload"] for r in recorder.drain(now=200.0)])
    assert summary.rows == 300


def test_drain_sends_changes_once_and_forgets_closed_buckets(loan_bundle: Any) -> None:
    loan_bundle.version = 1
    rows = records(loan_bundle, 20, seed=4)
    rec = WindowRecorder(worker_id="w", bucket_seconds=60)
    rec.observe(loan_bundle, rows, loan_bundle.predict_records(rows), now=60.0)
    rec.observe_requests(1, [1.0] * 20, now=60.0)
    rec.observe_rejected(1, 2, now=61.0)
    [first] = rec.drain(now=70.0)
    assert first["bucket_start"] == 60.0 and first["n_rows"] == 20
    assert first["payload"]["requests"] == 20 and first["payload"]["rejected"] == 2
    assert first["payload"]["seconds"] == 60  # its width, for rates after a change of width
    assert rec.drain(now=71.0) == []  # nothing changed
    rec.observe_requests(1, [500.0], now=75.0)
    [again] = rec.drain(now=130.0)  # the bucket closed: last snapshot, then forgotten
    assert again["payload"]["requests"] == 21
    rec.observe_requests(1, [1.0], now=75.0)  # a late request re-opens the old bucket
    [late] = rec.drain(now=131.0)
    assert late["worker_id"] == "w~1" and late["payload"]["requests"] == 1  # adds, never replaces
    assert summarize([again["payload"], late["payload"]]).requests == 22


def test_latency_quantile_from_histogram() -> None:
    assert quantile_from_histogram([0] * 20, 0.95) is None
    counts = [0] * 20
    counts[6] = 95  # <= 10 ms
    counts[14] = 5  # <= 250 ms
    assert quantile_from_histogram(counts, 0.95) == 10
    assert quantile_from_histogram(counts, 0.99) == 250


def _bucket_payloads(bundle: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two workers' buckets of ``rows``: 250 rows a minute, in model calls of 50."""
    a = WindowRecorder(worker_id="a", bucket_seconds=60)
    b = WindowRecorder(worker_id="b", bucket_seconds=60)
    for start in range(0, len(rows), 50):
        part = rows[start : start + 50]
        now = 60.0 * (start // 250) + 1.0
        (a if start % 100 == 0 else b).observe(bundle, part, bundle.predict_records(part), now=now)
    end = 60.0 * (len(rows) // 250 + 1)
    return [r["payload"] for r in a.drain(now=end) + b.drain(now=end)]


def test_buckets_carry_no_reservoir_and_the_report_is_unchanged(
    loan_bundle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loan_bundle.version = 1
    base = generate_loans(1_500, seed=5)
    shifted = drifted(1_500, seed=6)
    rows = validated(loan_bundle, pd.concat([base, shifted], ignore_index=True))
    with monkeypatch.context() as m:  # buckets as they were made before: with the reservoir
        m.setattr(window, "BUCKET_SAMPLE_SIZE", None)
        before = _bucket_payloads(loan_bundle, rows)
    after = _bucket_payloads(loan_bundle, rows)
    assert len(after) == len(before) == 24  # 12 minutes x 2 workers
    assert before[0]["features"]["features"]["income"]["sample_size"] == 256
    for payload in after:
        for part in ("features", "outputs"):
            for spec in payload[part]["features"].values():
                if spec["kind"] == "numeric":
                    assert spec["sample_size"] == 0
                    assert spec["sample"] == spec["sample_keys"] == ""
    assert len(json.dumps(after)) < 0.5 * len(json.dumps(before))

    reference = reference_for(loan_bundle)

    def report(payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return build_report(
            bundle=loan_bundle,
            reference=reference,
            current=summarize(payloads, starts=[0.0, 660.0]),
            labeled=[],
            concept={},
            # The profiles' reservoir is what changed here; the row samples of the doubly
            # robust estimate draw fresh random keys per recorder (tested in test_sample.py).
            options=MonitorOptions(estimator="cbpe"),
            model_name="loans",
            start=0.0,
            end=720.0,
        )

    old = report(before)
    assert report(after) == old
    # A rolling upgrade: the window holds buckets of both kinds.
    assert report(before[:10] + after[10:]) == old
    features = {f["feature"]: f for f in old["data_drift"]["features"]}
    assert features["income"]["severity"] == "critical"
    assert old["rows"] == 3_000 and old["status"] == "critical"


def test_report_charts_over_time_use_a_date_axis_not_one_label_per_report() -> None:
    """Sixty reports: text labels overlapped; a date axis picks a few readable ticks."""
    from driftline.monitoring.html import _accuracy_over_time, _drift_over_time

    history = [
        {
            "ts": 1_780_000_000.0 + 300 * i,
            "data_drift": {
                "features": [{"feature": "x", "effect_size": 0.01 * i, "severity": "none"}]
            },
            "performance": {"estimated": {"accuracy": 0.8}, "reference_accuracy": 0.81},
        }
        for i in range(60)
    ]
    for fig in (_drift_over_time(history), _accuracy_over_time(history)):
        assert fig is not None
        assert fig.layout.xaxis.type == "date"
        assert fig.layout.xaxis.nticks == 8
        xs = fig.data[0].x
        assert len(xs) == 60 and all(hasattr(x, "year") for x in xs)
        assert xs[0].isoformat() == "2026-05-28T20:26:40"  # UTC, as the axis title says
