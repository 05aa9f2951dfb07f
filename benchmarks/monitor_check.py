"""The monitor's hourly check over stored buckets: cost of the doubly robust accuracy estimate.

    python benchmarks/monitor_check.py                  # 60 buckets of 2,500 rows, 25 features
    python benchmarks/monitor_check.py --rows 500       # quieter traffic (samples not full)
    python benchmarks/monitor_check.py --sample-rows 1000,2000,5000

A logistic regression is trained by driftline on 20 numeric and 5 categorical features (a
non-linear concept, so the model is misspecified); its monitoring reference keeps the labelled
holdout sample. Traffic under covariate shift goes through two serving recorders (two workers)
into 60 one-minute buckets, which are stored as JSON, as the workers write them. Then, side by
side for buckets without a row sample (``DRIFTLINE_MONITOR_SAMPLE_ROWS=0``, what buckets held
before) and with one of each capacity:

* the bucket JSON size (mean KiB per stored bucket row);
* parse and merge alone (:func:`~driftline.monitoring.window.summarize` of the JSON texts: what
  the row samples add to reading a window), best of 5;
* the stored check as the monitor job runs it after reading the rows: parse the payloads, merge
  them and build the report
  (:func:`~driftline.monitoring.monitor.build_report`: drift, quality, distributions and the
  label-free estimate), best of 5; with a sample, once with ``estimator="cbpe"`` (what the
  sample's parse and merge cost alone) and once with the default ``"auto"`` (the doubly robust
  estimate: a domain classifier fitted per check on the window sample, the outcome model
  already fitted), and the first check of a process (the outcome model fitted too).

Timings use one native thread, as the monitor does beside a serving model thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from driftline.monitoring import accuracy
from driftline.monitoring.monitor import MonitorOptions, build_report
from driftline.monitoring.reference import reference_for
from driftline.monitoring.window import WindowRecorder, summarize
from driftline.training import train_model

N_NUMERIC, N_CATEGORICAL, BUCKETS = 20, 5, 60


def data(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Features and a label from a concept a linear model gets wrong (a ring in x0, x1)."""
    x = rng.normal(size=(n, N_NUMERIC))
    x[:, :3] = x[:, :3] * (1 + 0.3 * shift) + shift
    out = pd.DataFrame(x, columns=[f"n{i}" for i in range(N_NUMERIC)])
    for j in range(N_CATEGORICAL):
        levels = 3 + 10 * j
        p = np.arange(levels, 0, -1.0) ** (1 + shift)
        out[f"c{j}"] = [f"v{k}" for k in rng.choice(levels, n, p=p / p.sum())]
    inside = 1 / (1 + np.exp(3 * (x[:, 0] ** 2 + x[:, 1] ** 2 - 2)))
    out["y"] = (rng.random(n) < 0.8 * inside + 0.1 * (x[:, 2] > 0)).astype(int)
    return out


def best_ms(run: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_500, help="rows per one-minute bucket")
    parser.add_argument("--sample-rows", default="2000", help="bucket sample capacities")
    args = parser.parse_args(argv)
    capacities = [0, *[int(v) for v in args.sample_rows.split(",")]]
    rng = np.random.default_rng(11)
    bundle = train_model(data(rng, 20_000), "y", kind="logreg", holdout=0.4, seed=1).bundle
    bundle.version = 1
    reference = reference_for(bundle)
    assert reference.labelled is not None
    traffic = data(rng, args.rows * BUCKETS, shift=0.8)
    records = traffic.drop(columns="y").to_dict("records")
    predictions = [
        bundle.predict_records(records[i : i + 250]) for i in range(0, len(records), 250)
    ]
    print(
        f"{BUCKETS} buckets x {args.rows:,} rows, {N_NUMERIC + N_CATEGORICAL} features, two "
        f"workers; reference sample {reference.labelled.n:,} rows "
        f"({len(json.dumps(reference.labelled.to_dict())) / 1024:.0f} KiB in monitoring.json)",
        flush=True,
    )
    print(
        f"{'sample rows':>11} {'bucket KiB':>10} {'parse+merge':>12} {'check, CBPE':>12} "
        f"{'check, auto':>12} "
        f"{'first check':>12}  estimator",
        flush=True,
    )
    for capacity in capacities:
        workers = [
            WindowRecorder(worker_id=w, bucket_seconds=60, sample_rows=capacity) for w in "ab"
        ]
        for k, start in enumerate(range(0, len(records), 250)):
            now = 60.0 * (start // args.rows) + 1.0
            part = records[start : start + 250]
            workers[k % 2].observe(bundle, part, predictions[k], now=now)
        texts = [json.dumps(r["payload"]) for w in workers for r in w.drain(now=1e9)]
        kib = float(np.mean([len(t) for t in texts])) / 1024

        def check(estimator: str, texts: list[str] = texts) -> dict[str, Any]:
            current = summarize(
                (json.loads(t) for t in texts), starts=[0.0, 60.0 * (BUCKETS - 1)]
            )
            return build_report(
                bundle=bundle,
                reference=reference_for(bundle),
                current=current,
                labeled=[],
                concept={},
                options=MonitorOptions(estimator=estimator),
                model_name="bench",
                start=0.0,
                end=60.0 * BUCKETS,
            )

        def merge(texts: list[str] = texts) -> None:
            summarize((json.loads(t) for t in texts), starts=[0.0, 60.0 * (BUCKETS - 1)])

        with threadpool_limits(limits=1):
            merge_ms = best_ms(merge)
            cbpe_ms = best_ms(lambda: check("cbpe"))
            if capacity:
                accuracy._cache.clear()  # a fresh process: the outcome model is fitted too
                started = time.perf_counter()
                body = check("auto")
                first_ms = 1000 * (time.perf_counter() - started)
                auto_ms = best_ms(lambda: check("auto"))
                perf = body["performance"]
                chosen = f"{perf['estimator']} ({perf['estimator_reason'][:60]}...)"
            else:
                auto_ms = first_ms = cbpe_ms
                chosen = "cbpe (no row sample)"
        print(
            f"{capacity:>11,} {kib:>10.0f} {merge_ms:>10.0f}ms {cbpe_ms:>10.0f}ms "
            f"{auto_ms:>10.0f}ms "
            f"{first_ms:>10.0f}ms  {chosen}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
