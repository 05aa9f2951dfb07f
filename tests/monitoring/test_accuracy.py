"""The monitor's label-free accuracy: doubly robust by default, CBPE when it cannot run, and
every surface says which estimator produced the number."""

from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from driftline.errors import ConfigurationError
from driftline.models.bundle import ModelBundle
from driftline.monitoring import monitor as monitor_module
from driftline.monitoring.html import render_report_html
from driftline.monitoring.monitor import MonitorOptions, build_report
from driftline.monitoring.reference import (
    REFERENCE_SAMPLE_ROWS,
    MonitoringReference,
    reference_for,
)
from driftline.monitoring.window import WindowRecorder, summarize
from driftline.schema import label_text
from driftline.service.dashboard_page import accuracy_series
from driftline.training import train_model

# The benchmark's generators, from its folder (benchmarks/ is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import detection_concept as bench

CASE = next(c for c in bench.CBPE_CASES if c.concept == "circle")  # linear model on a circle
FEATURES = [f"x{i}" for i in range(bench.N_FEATURES)]


def frame(x: np.ndarray, y: np.ndarray | None = None) -> pd.DataFrame:
    out = pd.DataFrame(x, columns=FEATURES)
    if y is not None:
        out["y"] = y
    return out


@pytest.fixture(scope="module")
def circle() -> dict[str, Any]:
    """The benchmark's misspecified case: a logistic regression trained (by driftline) on the
    circle concept; its holdout gives the calibrator and the labelled reference sample."""
    rng = np.random.default_rng(7)
    weights = rng.normal(0.0, 1.0, (CASE.classes, bench.N_FEATURES))
    zero, one = np.zeros(bench.N_FEATURES), np.ones(bench.N_FEATURES)
    x, y = bench._draw(rng, 16_000, CASE, weights, zero, one)
    bundle = train_model(frame(x, y), "y", kind="logreg", holdout=0.4, seed=3).bundle
    bundle.version = 1
    return {"bundle": bundle, "weights": weights, "rng": rng}


def windows(circle: dict[str, Any], count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Windows under pure covariate shift, drawn as the benchmark draws them."""
    rng, weights = circle["rng"], circle["weights"]
    out = []
    for _ in range(count):
        mean = rng.uniform(-1.5, 1.5, bench.N_FEATURES)
        scale = rng.uniform(0.6, 1.6, bench.N_FEATURES)
        out.append(bench._draw(rng, 3_000, CASE, weights, mean, scale))
    return out


def payloads(bundle: ModelBundle, x: np.ndarray, **recorder: Any) -> list[dict[str, Any]]:
    """Five one-minute buckets of two workers, model calls of 100 rows."""
    workers = [WindowRecorder(worker_id=w, bucket_seconds=60, **recorder) for w in "ab"]
    records = frame(x).to_dict("records")
    for start in range(0, len(records), 100):
        part = records[start : start + 100]
        now = 60.0 * (start * 5 // len(records)) + 1.0
        workers[(start // 100) % 2].observe(bundle, part, bundle.predict_records(part), now=now)
    return [r["payload"] for w in workers for r in w.drain(now=600.0)]


def report(
    bundle: ModelBundle,
    reference: MonitoringReference,
    parts: list[dict[str, Any]],
    x: np.ndarray,
    y: np.ndarray,
    **options: Any,
) -> dict[str, Any]:
    predicted = bundle.predict_frame(frame(x)).labels
    return build_report(
        bundle=bundle,
        reference=reference,
        current=summarize(parts, starts=[0.0, 240.0]),
        labeled=[
            {"label": label_text(t), "prediction": label_text(p)}
            for t, p in zip(y, predicted, strict=True)
        ],
        concept={},
        options=MonitorOptions(**options),
        model_name="circle",
        start=0.0,
        end=300.0,
    )


def test_misspecified_model_under_covariate_shift_gets_the_doubly_robust_estimate(
    circle: dict[str, Any],
) -> None:
    """The default estimate is closer to the realized accuracy than CBPE's on the benchmark's
    misspecified case, from buckets as workers write them (samples merged across workers)."""
    bundle = circle["bundle"]
    reference = reference_for(bundle)
    assert bundle.evaluation is not None
    holdout = len(bundle.evaluation)
    assert reference.labelled is not None
    assert reference.labelled.n == min(holdout, REFERENCE_SAMPLE_ROWS)
    assert reference.labelled.population == holdout
    errors: dict[str, list[float]] = {"auto": [], "cbpe": []}
    used = []
    for x, y in windows(circle, 4):
        parts = payloads(bundle, x)
        auto = report(bundle, reference, parts, x, y)
        cbpe = report(bundle, reference, parts, x, y, estimator="cbpe")
        realized = auto["performance"]["realized"]["accuracy"]
        assert cbpe["performance"]["realized"]["accuracy"] == realized
        errors["auto"].append(abs(auto["performance"]["estimated"]["accuracy"] - realized))
        errors["cbpe"].append(abs(cbpe["performance"]["estimated"]["accuracy"] - realized))
        perf = auto["performance"]
        used.append(perf["estimator"])
        detail = perf["estimator_detail"]
        assert detail["window_sample_rows"] == 2_000
        assert detail["reference_sample_rows"] == reference.labelled.n
        assert detail["cbpe_accuracy"] == cbpe["performance"]["estimated"]["accuracy"]
        if perf["estimator"] == "doubly_robust":
            assert "standard errors" in perf["estimator_reason"]
        # F1 and AUC stay CBPE's: only the accuracy and its band change.
        assert perf["estimated"]["f1_macro"] == cbpe["performance"]["estimated"]["f1_macro"]
        assert cbpe["performance"]["estimator"] == "cbpe"
        assert "configuration" in cbpe["performance"]["estimator_reason"]
    assert "doubly_robust" in used
    assert np.mean(errors["auto"]) < 0.75 * np.mean(errors["cbpe"]), errors


def test_old_references_and_old_buckets_keep_cbpe_and_say_why(circle: dict[str, Any]) -> None:
    bundle = circle["bundle"]
    reference = reference_for(bundle)
    [(x, y)] = windows(circle, 1)
    new = payloads(bundle, x)
    # A reference stored before the labelled sample existed.
    stored = reference.to_dict()
    stored.pop("labelled_sample")
    old_reference = MonitoringReference.from_dict(stored)
    assert old_reference.labelled is None
    perf = report(bundle, old_reference, new, x, y)["performance"]
    assert perf["estimator"] == "cbpe" and "no labelled sample" in perf["estimator_reason"]
    assert perf["estimated"]["accuracy"] == perf["estimator_detail"]["cbpe_accuracy"]
    # Buckets written without samples (before them, or DRIFTLINE_MONITOR_SAMPLE_ROWS=0).
    bare = payloads(bundle, x, sample_rows=0)
    assert all(p["sample"] is None for p in bare)
    perf = report(bundle, reference, bare, x, y)["performance"]
    assert perf["estimator"] == "cbpe" and "no row sample" in perf["estimator_reason"]
    # A rolling upgrade: some buckets of the window have a sample, some not.
    perf = report(bundle, reference, new[:3] + bare[3:], x, y)["performance"]
    assert perf["estimator"] == "cbpe" and "not uniform" in perf["estimator_reason"]
    # Old payloads had no "sample" key at all: they read as buckets without one.
    legacy = [{k: v for k, v in p.items() if k != "sample"} for p in bare]
    assert report(bundle, reference, legacy, x, y)["performance"]["estimator"] == "cbpe"


def test_the_estimator_shows_in_the_report_html_dashboard_and_cli(
    circle: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftline.cli.monitor import print_report

    bundle = circle["bundle"]
    reference = reference_for(bundle)
    [(x, y)] = windows(circle, 1)
    body = report(bundle, reference, payloads(bundle, x), x, y)
    perf = body["performance"]
    assert perf["estimator"] in ("doubly_robust", "cbpe") and perf["estimator_reason"]
    label = {"doubly_robust": "doubly robust", "cbpe": "CBPE"}[perf["estimator"]]
    page = render_report_html(body, [body])
    assert f"estimated ({label})" in page
    assert html.escape(perf["estimator_reason"]) in page
    series = accuracy_series([body])
    assert series["estimator"] == [perf["estimator"]]
    assert series["estimator_reason"] == [perf["estimator_reason"]]
    console = Console(record=True, width=200)
    monkeypatch.setattr("driftline.cli.monitor.console", console)
    print_report(body)
    text = console.export_text()
    assert f"accuracy ({label})" in text and f"accuracy estimated by {label}" in text
    # Reports written before the field read as CBPE everywhere.
    old = {**body, "performance": {k: v for k, v in perf.items() if not k.startswith("estimator")}}
    assert "estimated (CBPE)" in render_report_html(old, [old])
    assert accuracy_series([old])["estimator"] == ["cbpe"]


def test_unknown_estimator_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="estimator"):
        MonitorOptions(estimator="atc")
    assert monitor_module.MonitorOptions().estimator == "auto"
