"""Drift check speed and memory: driftline profiles vs Evidently's DataDriftPreset vs np.sort.

    python benchmarks/drift_speed.py                       # 10k, 100k and 1M rows
    python benchmarks/drift_speed.py --quick               # 10k and 100k rows
    python benchmarks/drift_speed.py --sizes 10000,100000  # chosen sizes
    python benchmarks/drift_speed.py --setup-evidently     # create the Evidently venv, then run

Data: 20 numeric features (normal, log-normal, Poisson, zero-inflated, uniform, some with
missing values) and 5 categorical ones (3 to 1,000 long-tailed categories), reference = current
= N rows, the current data mildly shifted on a few features. Each measurement runs in its own
process, which loads the data from Parquet, resets its peak-memory mark (``/proc/self/clear_refs``)
and reports the time and the peak resident memory above what it held before:

* **driftline check**: build the current window profile from the raw frame
  (``reference.empty_like()`` + ``add_frame``) and run the full check on it (``decide_drift`` and
  ``check_quality``); the reference profile is built beforehand, at training time (its build time
  is printed for information);
* **driftline stored**: the same check on profiles loaded from JSON, as the monitor job does
  with stored window buckets -- its cost does not depend on the number of rows;
* **np.sort bound**: ``np.sort`` of every numeric column of the current data, the bare cost of
  looking at each value once in order (what any quantile- or CDF-based test pays);
* **Evidently**: ``Report([DataDriftPreset()]).run(current, reference)``.

Evidently pins ``pandas<3`` in practice (0.7.x fails to import with pandas 3) and ``plotly<6``,
while driftline runs on pandas 3 and plotly 7, so it lives in its own virtual environment,
``.venv-bench-evidently`` next to ``.venv`` (or the interpreter in
``$DRIFTLINE_BENCH_EVIDENTLY_PYTHON``). ``--setup-evidently`` creates it with
``python -m venv .venv-bench-evidently`` and
``pip install "evidently>=0.7.20" "pandas>=2.1,<3" pyarrow``
(the ``bench`` extra of pyproject.toml lists the same pins). Without it the Evidently column is
skipped.

Targets (issue 3): at 1M rows >= 50x faster than Evidently with at most a third of its peak
memory, no slower than the sort bound, and under 50 ms for a check over stored profiles at any
size. It also prints the cost of adding one micro-batch (5 rows x 10 features) to a window
profile, the serving hot path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = ROOT / ".venv-bench-evidently"
N_NUMERIC, N_CATEGORICAL = 20, 5
CATEGORY_SIZES = (3, 10, 50, 200, 1000)


# --- data -----------------------------------------------------------------------------------


def make_frame(n: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        kind = i % 5
        shift = 0.2 if shifted and i in (0, 7) else 0.0
        if kind == 0:
            x = rng.normal(shift, 1.0, n)
        elif kind == 1:
            x = rng.lognormal(shift, 1.0, n)
        elif kind == 2:
            x = rng.poisson(3.0 + 3 * shift, n).astype(np.float64)
        elif kind == 3:
            x = np.where(rng.random(n) < 0.7, 0.0, rng.exponential(2.0, n))
        else:
            x = rng.uniform(0.0, 1.0 + shift, n)
        if i % 4 == 3:
            x[rng.random(n) < 0.02] = np.nan
        columns[f"num_{i:02d}"] = x
    for j, k in enumerate(CATEGORY_SIZES):
        weights = 1.0 / np.arange(1, k + 1) ** 1.1
        if shifted and j == 1:
            weights = weights[::-1]
        labels = np.array([f"c{j}_{v}" for v in range(k)], dtype=object)
        columns[f"cat_{j}"] = labels[rng.choice(k, size=n, p=weights / weights.sum())]
    return pd.DataFrame(columns)


def write_data(n: int, directory: Path) -> None:
    make_frame(n, 1, shifted=False).to_parquet(directory / "reference.parquet")
    make_frame(n, 2, shifted=True).to_parquet(directory / "current.parquet")


# --- measuring in a worker process ----------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _peak_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class Measure:
    """Wall time and peak resident memory above the starting point of a block."""

    def __enter__(self) -> Measure:
        self.reset = _reset_peak()
        self.rss0 = _rss_kib()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.peak_mib = max(0, _peak_kib() - self.rss0) / 1024


def worker(method: str, directory: Path) -> dict[str, Any]:
    reference = pd.read_parquet(directory / "reference.parquet")
    current = pd.read_parquet(directory / "current.parquet")
    numeric = [c for c in current.columns if c.startswith("num_")]
    out: dict[str, Any] = {"method": method, "rows": len(current)}
    if method == "sort":
        with Measure() as m:
            for name in numeric:
                np.sort(current[name].to_numpy())
        out.update(seconds=m.seconds, peak_mib=m.peak_mib)
    elif method == "evidently":
        from evidently import Report
        from evidently.presets import DataDriftPreset

        with Measure() as m:
            snapshot = Report([DataDriftPreset()]).run(current, reference)
        value = snapshot.dict()["metrics"][0]["value"]
        import evidently

        out.update(
            seconds=m.seconds,
            peak_mib=m.peak_mib,
            drifted=value.get("count"),
            version=evidently.__version__,
            pandas=pd.__version__,
        )
    elif method == "driftline":
        from driftline.drift import decide_drift
        from driftline.profile import DatasetProfile, build_reference_profile
        from driftline.quality import check_quality
        from driftline.schema import infer_schema

        schema = infer_schema(reference, None)
        t0 = time.perf_counter()
        ref = build_reference_profile(reference, schema)
        out["reference_build_seconds"] = time.perf_counter() - t0
        with Measure() as m:
            window = ref.empty_like(seed=1)
            window.add_frame(current)
            report = decide_drift(ref, window)
            check_quality(ref, window)
        out.update(
            seconds=m.seconds,
            peak_mib=m.peak_mib,
            drifted=report.n_drifted,
            drifted_features=list(report.drifted_features),
        )
        # The monitor job's case: both profiles come from the store as JSON.
        ref_text, cur_text = json.dumps(ref.to_dict()), json.dumps(window.to_dict())
        timings = []
        for _ in range(7):
            t0 = time.perf_counter()
            stored_ref = DatasetProfile.from_dict(json.loads(ref_text))
            stored_cur = DatasetProfile.from_dict(json.loads(cur_text))
            decide_drift(stored_ref, stored_cur)
            check_quality(stored_ref, stored_cur)
            timings.append(time.perf_counter() - t0)
        out["stored_check_ms"] = 1000 * float(np.median(timings))
        out["profile_json_kib"] = (len(ref_text) + len(cur_text)) / 2 / 1024
    else:
        raise SystemExit(f"unknown method {method!r}")
    return out


def hot_path() -> dict[str, float]:
    """Microseconds to add one micro-batch to a window profile."""
    import timeit

    from driftline.profile import build_reference_profile
    from driftline.schema import infer_schema

    frame = make_frame(20_000, 3, shifted=False)
    columns = [*[f"num_{i:02d}" for i in range(8)], "cat_0", "cat_2"]
    small = frame[columns]
    reference = build_reference_profile(small, infer_schema(small, None))
    window = reference.empty_like(seed=1)
    batch = small.iloc[:5].reset_index(drop=True)
    arrays = {name: batch[name].to_numpy() for name in columns}
    one = {name: values[:1] for name, values in arrays.items()}
    for _ in range(500):
        window.add_columns(arrays)

    def best(fn: Any) -> float:
        return 1e6 * min(timeit.repeat(fn, number=2000, repeat=5)) / 2000

    return {
        "add_columns_5x10_us": best(lambda: window.add_columns(arrays)),
        "add_columns_1x10_us": best(lambda: window.add_columns(one)),
        "add_frame_5x10_us": best(lambda: window.add_frame(batch)),
    }


# --- the parent -----------------------------------------------------------------------------


def evidently_python() -> str | None:
    candidates = [os.environ.get("DRIFTLINE_BENCH_EVIDENTLY_PYTHON"), sys.executable,
                  str(EVIDENTLY_VENV / "bin" / "python")]
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import evidently.presets, pyarrow"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return python
    return None


def setup_evidently() -> None:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "evidently>=0.7.20", "pandas>=2.1,<3",
         "pyarrow"],
        check=True,
    )


def run_worker(python: str, method: str, directory: Path, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        done = subprocess.run(
            [python, __file__, "--worker", method, "--data", str(directory)],
            capture_output=True, text=True, timeout=timeout, check=False, env=env,
        )
    except subprocess.TimeoutExpired:
        return {"method": method, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"method": method, "error": done.stderr.strip().splitlines()[-1][:200]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="drift check speed benchmark")
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows only")
    parser.add_argument("--sizes", help="comma-separated row counts")
    parser.add_argument("--setup-evidently", action="store_true",
                        help="create .venv-bench-evidently first")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed per measurement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return 0
    if args.setup_evidently:
        setup_evidently()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    )
    ev_python = evidently_python()
    print(f"driftline drift speed benchmark: {N_NUMERIC} numeric + {N_CATEGORICAL} categorical "
          f"features, reference = current rows; {os.cpu_count()} CPUs")
    if ev_python is None:
        print("Evidently: not installed (run with --setup-evidently); its column is skipped")
    results: list[dict[str, Any]] = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="driftline-speed-") as tmp:
            directory = Path(tmp)
            write_data(n, directory)
            row: dict[str, Any] = {"rows": n}
            for method in ("driftline", "sort", "evidently"):
                if method == "evidently" and ev_python is None:
                    continue
                python = ev_python if method == "evidently" else sys.executable
                assert python is not None
                row[method] = run_worker(python, method, directory, args.timeout)
            results.append(row)
            _print_row(row)
            sys.stdout.flush()
    hot = hot_path()
    print("\nServing hot path, one micro-batch into a window profile (best of 5 x 2000):")
    for key, value in hot.items():
        print(f"  {key:<22} {value:8.1f} us")
    _print_summary(results)
    return 0


def _fmt_time(result: dict[str, Any]) -> str:
    return f"{result['seconds']:.3f} s" if "seconds" in result else result.get("error", "-")


def _print_row(row: dict[str, Any]) -> None:
    n = row["rows"]
    print(f"\n== {n:,} rows ==")
    print(f"{'method':<30}{'time':>14}{'peak memory':>16}")
    labels = {"driftline": "driftline check", "sort": "np.sort bound", "evidently": "Evidently"}
    for method in ("driftline", "sort", "evidently"):
        result = row.get(method)
        if result is None:
            continue
        label = labels[method]
        if method == "evidently" and "version" in result:
            label += f" {result['version']}"
        memory = f"{result['peak_mib']:.1f} MiB" if "peak_mib" in result else ""
        print(f"{label:<30}{_fmt_time(result):>14}{memory:>16}")
    d = row["driftline"]
    if "stored_check_ms" in d:
        print(f"{'driftline stored profiles':<30}{d['stored_check_ms']:>11.1f} ms"
              f"{'(profile JSON ' + format(d['profile_json_kib'], '.0f') + ' KiB)':>30}")
        print(f"  reference profile build (training time): {d['reference_build_seconds']:.3f} s; "
              f"drifted features: {d['drifted']} {d['drifted_features']}")
    ev = row.get("evidently", {})
    if "seconds" in ev and "seconds" in d:
        print(f"  Evidently / driftline: time x{ev['seconds'] / d['seconds']:.1f}, "
              f"peak memory x{ev['peak_mib'] / max(d['peak_mib'], 0.1):.1f}; "
              f"Evidently drifted columns: {ev.get('drifted')}")
    s = row.get("sort", {})
    if "seconds" in s and "seconds" in d:
        print(f"  driftline / np.sort bound: time x{d['seconds'] / s['seconds']:.2f}")


def _print_summary(results: list[dict[str, Any]]) -> None:
    print("\n== Targets ==")
    for row in results:
        d, s, ev = row["driftline"], row.get("sort", {}), row.get("evidently", {})
        n = row["rows"]
        if "seconds" not in d:
            print(f"{n:>9,} rows: driftline failed: {d.get('error')}")
            continue
        parts = [f"stored check {d['stored_check_ms']:.1f} ms "
                 f"({'MET' if d['stored_check_ms'] < 50 else 'MISSED'} < 50 ms)"]
        if "seconds" in s:
            ratio = d["seconds"] / s["seconds"]
            parts.append(f"vs sort x{ratio:.2f} ({'MET' if ratio <= 1.0 else 'MISSED'} <= 1)")
        if "seconds" in ev:
            speed = ev["seconds"] / d["seconds"]
            memory = ev["peak_mib"] / max(d["peak_mib"], 0.1)
            verdict = "MET" if speed >= 50 and memory >= 3 else "MISSED"
            parts.append(
                f"vs Evidently x{speed:.0f} faster, x{memory:.1f} less memory"
                + (f" ({verdict} >= 50x, >= 3x)" if n >= 1_000_000 else "")
            )
        elif ev:
            parts.append(f"Evidently: {ev.get('error')}")
        print(f"{n:>9,} rows: " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
