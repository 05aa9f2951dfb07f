"""The host watcher catches generated load on the real machine (about 20 s).

A short baseline is learnt from this machine as it is, then every CPU is kept busy by the load
generator and the watcher scores what it sees. Observations are noisy (this may be a shared
machine with other work on it), so the test judges flag *rates*, not single observations. When
other work already kept the CPUs saturated during the baseline, a CPU load cannot look unusual
to any detector: the test then skips and says so rather than pass or fail on chance.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.host import HostSampler
from driftline.anomaly.load import CpuLoad
from driftline.anomaly.watcher import HostWatcher, WatchEvent, WatchPolicy

INTERVAL = 0.25  # seconds between observations
BASELINE = 40  # observations (10 s)
UNDER_LOAD = 24  # observations (6 s)
SATURATED = 90.0  # CPU percent


def cpu(events: list[WatchEvent]) -> list[float]:
    return [float(e.observation["cpu_percent"]) for e in events]


@pytest.mark.slow
@pytest.mark.alone  # sibling xdist workers would keep the CPUs busy
def test_the_watcher_flags_generated_cpu_load(tmp_path: Path) -> None:
    sampler = HostSampler()
    # With 40 baseline rows, contamination 0.1 puts the threshold at the 4th-highest baseline
    # score rather than the 2nd: less at the mercy of one odd row from other work.
    policy = WatchPolicy(baseline_rows=BASELINE, contamination=0.1, retrain=False, seed=0)
    watcher = HostWatcher(sampler, policy=policy)
    baseline: list[WatchEvent] = []
    watcher.run(interval=INTERVAL, count=BASELINE, on_event=baseline.append)
    assert baseline[-1].trained is not None and watcher.bundle is not None

    busy_share = float(np.mean(np.asarray(cpu(baseline)) >= SATURATED))
    if busy_share > 0.05:
        pytest.skip(
            f"other work kept the CPUs at >= {SATURATED:.0f}% in {busy_share:.0%} of the "
            "baseline: a generated CPU load cannot stand out on this machine right now"
        )
    # The baseline as the model scores it (in-sample: about the contamination share).
    frame = watcher.bundle.schema.to_frame([e.observation for e in baseline])
    baseline_rate = float(np.mean(watcher.bundle.model.flag(frame)))

    loaded: list[WatchEvent] = []
    with CpuLoad(seconds=UNDER_LOAD * INTERVAL + 4.0) as load:
        time.sleep(0.5)  # let the workers start
        sampler.reset()
        watcher.run(interval=INTERVAL, count=UNDER_LOAD, on_event=loaded.append)
        assert load.running
    load_rate = float(np.mean([bool(e.flagged) for e in loaded]))
    observations = tmp_path / "observations.csv"
    pd.DataFrame(
        [{**e.observation, "phase": "baseline"} for e in baseline]
        + [{**e.observation, "phase": "load", "score": e.score} for e in loaded]
    ).to_csv(observations, index=False)
    summary = (
        f"flagged {load_rate:.0%} under load (median CPU {statistics.median(cpu(loaded)):.0f}%) "
        f"vs {baseline_rate:.0%} of the baseline (median CPU "
        f"{statistics.median(cpu(baseline)):.0f}%, max {max(cpu(baseline)):.0f}%, "
        f"{busy_share:.0%} at >= {SATURATED:.0f}%); observations in {observations}"
    )
    assert statistics.median(cpu(loaded)) >= SATURATED, f"the load did not show: {summary}"
    assert load_rate >= 0.5, summary
    assert load_rate - baseline_rate >= 0.3, summary
    scores_loaded = [e.score for e in loaded if e.score is not None]
    assert statistics.median(scores_loaded) > (watcher.bundle.model.threshold_), summary
