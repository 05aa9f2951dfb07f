"""Drift over a Parquet dataset larger than comfortable: streaming in one process vs Ray Data.

    python benchmarks/drift_large.py                    # 10M current rows x 25 features
    python benchmarks/drift_large.py --rows 1000000     # smaller
    python benchmarks/drift_large.py --keep DIR         # write (or reuse) the data under DIR

Data: 20 numeric features (normal, log-normal, exponential, integer-valued, uniform; four with
missing values) and 5 categorical string features with 10, 20, 30, 40 and 50 categories,
written as Parquet datasets (files of ``--file-rows`` rows): the current dataset has ``--rows``
rows, the reference ``--reference-rows`` (default a fifth: a training set), the current one
shifted on a few features. The data is generated and written in chunks, never held whole.

Each engine runs once, in its own process, ``driftline.compare_datasets(reference, current)``:

* **local**: the single-process path -- reference edges from one numeric column at a time,
  then both datasets counted in record batches of ``--batch-rows`` rows;
* **ray**: the same layout in the driver, the counting per block on a local Ray started with
  ``num_cpus=2`` (its start-up time is printed apart and not counted).

Reported per engine: wall time of the check, peak resident memory of the driver process
(``ru_maxrss``), and for Ray also the peak of the summed resident memory of the whole process
tree (driver, raylet, GCS, workers; sampled every 0.2 s with psutil, so shared object-store
pages may be counted more than once). Then whether every count and verdict of the two runs is
equal (they must be).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_NUMERIC = 20
CATEGORY_SIZES = (10, 20, 30, 40, 50)


def _chunk(rng: np.random.Generator, n: int, shifted: bool) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    s = 1.0 if shifted else 0.0
    for j in range(N_NUMERIC):
        kind = j % 5
        if kind == 0:
            x = rng.normal(0.2 * s * (j == 0), 1.0, n)
        elif kind == 1:
            x = rng.lognormal(0.0, 0.5 + 0.1 * s * (j == 1), n)
        elif kind == 2:
            x = rng.exponential(1.0, n)
        elif kind == 3:
            x = rng.poisson(3.0, n).astype(np.float64)
        else:
            x = rng.uniform(0.0, 1.0, n)
        if j % 5 == 4:
            x[rng.random(n) < 0.02] = np.nan
        cols[f"num_{j:02d}"] = x
    for k, size in enumerate(CATEGORY_SIZES):
        names = np.array([f"c{k}_{i:02d}" for i in range(size)], dtype=object)
        p = 1.0 / np.arange(1, size + 1)
        if shifted and k == 0:
            p = p[::-1]
        cols[f"cat_{k}"] = names[rng.choice(size, n, p=p / p.sum())]
    return pd.DataFrame(cols)


def write_dataset(folder: Path, rows: int, file_rows: int, seed: int, shifted: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    done, i = 0, 0
    while done < rows:
        n = min(file_rows, rows - done)
        _chunk(rng, n, shifted).to_parquet(
            folder / f"part-{i:05d}.parquet", index=False, row_group_size=131_072
        )
        done += n
        i += 1


def _summary(result: Any) -> dict[str, Any]:
    """Every count and verdict of a comparison (the floats rounded: they may differ last-bit)."""
    features: dict[str, Any] = {}
    for role, prof in (("reference", result.reference), ("current", result.current)):
        for name, p in prof.features.items():
            entry: dict[str, Any] = {"counts": p.counts.tolist(), "missing": p.missing}
            if p.kind == "numeric":
                entry |= {
                    "edges": p.edges.tolist(),
                    "below": p.below_reference,
                    "above": p.above_reference,
                }
            else:
                entry |= {"categories": list(p.categories), "unseen": p.unseen_names}
            features[f"{role}:{name}"] = entry
    verdicts = [(f.feature, f.severity, f.method) for f in result.data_drift.features]
    return {"status": result.status, "features": features, "verdicts": verdicts}


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def child(engine: str, reference: str, current: str, batch_rows: int, out: str) -> None:
    import driftline

    peak_tree = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not stop.wait(0.2):
            peak_tree = max(peak_tree, _tree_rss(os.getpid()))

    startup = 0.0
    if engine == "ray":
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - t0
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    result = driftline.compare_datasets(
        reference,
        current,
        engine="ray" if engine == "ray" else "local",
        batch_rows=batch_rows,
    )
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if engine == "ray":
        import ray

        ray.shutdown()
    Path(out).write_text(
        json.dumps(
            {
                "seconds": seconds,
                "startup": startup,
                "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "tree_peak_mb": peak_tree / 2**20,
                "summary": _summary(result),
                "rows": [result.reference.n_rows, result.current.n_rows],
                "drifted": list(result.drifted_features),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="current rows")
    parser.add_argument("--reference-rows", type=int, default=None, help="default rows / 5")
    parser.add_argument("--file-rows", type=int, default=500_000, help="rows per Parquet file")
    parser.add_argument("--batch-rows", type=int, default=131_072, help="local batch size")
    parser.add_argument("--keep", type=Path, default=None, help="data folder to write or reuse")
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, reference, current, batch_rows, out = args.child
        child(engine, reference, current, int(batch_rows), out)
        return
    ref_rows = args.reference_rows or max(args.rows // 5, 1)
    root = args.keep or Path(tempfile.mkdtemp(prefix="driftline-large-"))
    ref_dir, cur_dir = root / f"reference-{ref_rows}", root / f"current-{args.rows}"
    t0 = time.perf_counter()
    if not ref_dir.exists():
        write_dataset(ref_dir, ref_rows, args.file_rows, seed=1, shifted=False)
    if not cur_dir.exists():
        write_dataset(cur_dir, args.rows, args.file_rows, seed=2, shifted=True)
    size = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20
    print(
        f"data: reference {ref_rows:,} rows, current {args.rows:,} rows x "
        f"{N_NUMERIC + len(CATEGORY_SIZES)} features, {size:,.0f} MiB of Parquet under {root} "
        f"(written/checked in {time.perf_counter() - t0:.1f} s)"
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        for engine in args.engines.split(","):
            out = root / f"result-{engine}.json"
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    engine,
                    str(ref_dir),
                    str(cur_dir),
                    str(args.batch_rows),
                    str(out),
                ],
                check=True,
            )
            results[engine] = json.loads(out.read_text())
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'engine':8} {'check s':>9} {'driver peak MiB':>16} {'tree peak MiB':>14}  notes")
    for engine, r in results.items():
        notes = f"ray start-up {r['startup']:.1f} s (not counted)" if engine == "ray" else ""
        print(
            f"{engine:8} {r['seconds']:9.1f} {r['driver_peak_mb']:16.0f} "
            f"{r['tree_peak_mb']:14.0f}  {notes}"
        )
    first = next(iter(results.values()))
    print(f"status {first['summary']['status']}, drifted {first['drifted']}")
    if len(results) == 2:
        local, ray = results["local"], results["ray"]
        same = local["summary"] == ray["summary"] and local["rows"] == ray["rows"]
        print(
            f"every count and verdict equal: {same}; ray/local time ratio "
            f"{ray['seconds'] / local['seconds']:.2f}"
        )
        if not same:
            raise SystemExit("the engines disagree")


if __name__ == "__main__":
    main()
