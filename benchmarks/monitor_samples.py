"""The doubly robust accuracy estimate on the monitor's bounded samples, against CBPE.

    python benchmarks/monitor_samples.py                       # window samples 1000,2000,5000
    python benchmarks/monitor_samples.py 2000 20               # one size, 20 windows per case
    CASES=circle REFERENCE_ROWS=10000 python benchmarks/monitor_samples.py 2000   # one case

``benchmarks/detection_concept.py --cbpe-only`` measures the estimator on whole windows of
5,000 rows with the whole 10,000-row holdout as its reference. The monitor keeps less: a
uniform sample of at most ``REFERENCE_SAMPLE_ROWS`` (10,000) holdout rows, and a uniform sample
of at most ``DRIFTLINE_MONITOR_SAMPLE_ROWS`` rows of each window (the window's mean of the
outcome model is then CBPE's exact mean over the whole window plus the sample's mean gap, see
``ImportanceWeightedAccuracy.estimate(window_rows=...)``). Here: the benchmark's logistic-
regression cases (two well-specified, two misspecified; models fitted as there, other seeds),
windows of 20,000 rows under the same covariate shifts, CBPE on the whole window, the doubly
robust estimate on a sample of each size. Printed per case: MAE of CBPE and of the doubly
robust estimate (and the ratio, issue 11's targets: <= 0.75 misspecified, <= 1.1 well
specified), coverage of the band, seconds per estimate (one native thread).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))  # detection_concept.py, a sibling
import detection_concept as dc
from driftline.monitoring.reference import REFERENCE_SAMPLE_ROWS
from driftline.performance import (
    Calibrator,
    ImportanceWeightedAccuracy,
    estimate,
    realized_metrics,
)

WINDOW_ROWS = 20_000
#: Reference sample rows (the monitor's default; ``--reference`` to try others).
REFERENCE_ROWS = int(os.environ.get("REFERENCE_ROWS", REFERENCE_SAMPLE_ROWS))
#: Only these cases (comma-separated substrings of their names), e.g. CASES=3,circle.
CASES = [c for c in os.environ.get("CASES", "").split(",") if c]


def main(argv: list[str]) -> None:
    sizes = [int(v) for v in argv[0].split(",")] if argv else [1000, 2000, 5000]
    windows = int(argv[1]) if len(argv) > 1 else 12
    for number, case in enumerate(dc.CBPE_CASES):
        if case.model != "logreg" or (CASES and not any(c in case.name for c in CASES)):
            continue
        rng = np.random.default_rng(300 + number)
        if case.concept == "clusters":
            weights = rng.normal(0.0, 1.2, (6, dc.N_FEATURES))
        else:
            weights = rng.normal(0.0, 1.0, (case.classes, dc.N_FEATURES))
        zero, one = np.zeros(dc.N_FEATURES), np.ones(dc.N_FEATURES)
        x_ref, y_ref = dc._draw(rng, 20_000, case, weights, zero, one)
        predict = dc._fit_model(case, x_ref, y_ref, seed=number, quick=True)
        x_hold, y_hold = dc._draw(rng, 10_000, case, weights, zero, one)
        classes = list(range(case.classes))
        p_hold = predict(x_hold)
        calibrator = Calibrator().fit(y_hold, p_hold, classes)
        keep = rng.choice(len(x_hold), min(REFERENCE_ROWS, len(x_hold)), replace=False)
        predicted = p_hold[keep].argmax(axis=1)
        confidence = calibrator.transform(p_hold[keep])[np.arange(keep.size), predicted]
        with threadpool_limits(limits=1):
            iw = ImportanceWeightedAccuracy(seed=number).fit(
                x_hold[keep], predicted == y_hold[keep], confidence
            )
        errors: dict[object, list[float]] = {k: [] for k in ["cbpe", *sizes]}
        covered: dict[int, list[bool]] = {k: [] for k in sizes}
        seconds: dict[int, list[float]] = {k: [] for k in sizes}
        for _ in range(windows):
            mean = rng.uniform(-1.5, 1.5, dc.N_FEATURES)
            scale = rng.uniform(0.6, 1.6, dc.N_FEATURES)
            x, y = dc._draw(rng, WINDOW_ROWS, case, weights, mean, scale)
            proba = predict(x)
            predicted = proba.argmax(axis=1)
            real = realized_metrics(y, predicted, labels=classes).accuracy
            cbpe = estimate(calibrator.sketch(proba))
            errors["cbpe"].append(abs(cbpe.accuracy - real))
            q = calibrator.transform(proba)[np.arange(WINDOW_ROWS), predicted]
            for size in sizes:
                rows = rng.choice(WINDOW_ROWS, min(size, WINDOW_ROWS), replace=False)
                started = time.perf_counter()
                with threadpool_limits(limits=1):
                    found = iw.estimate(
                        x[rows], cbpe, window_confidence=q[rows], window_rows=WINDOW_ROWS
                    )
                seconds[size].append(time.perf_counter() - started)
                errors[size].append(abs(found.accuracy - real))
                covered[size].append(found.accuracy_lower <= real <= found.accuracy_upper)
        base = float(np.mean(errors["cbpe"]))
        print(f"{case.name}: CBPE MAE {base:.4f} ({windows} windows)", flush=True)
        for size in sizes:
            mae = float(np.mean(errors[size]))
            print(
                f"   window sample {size:5d}: doubly robust MAE {mae:.4f} ({mae / base:.2f}x "
                f"CBPE's), band covers {np.mean(covered[size]):.0%}, "
                f"{np.median(seconds[size]):.2f} s per estimate",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
