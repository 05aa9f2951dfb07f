"""Drift check speed and memory: driftline profiles vs Evidently's DataDriftPreset vs np.sort.

    python benchmarks/drift_speed.py                       # 10k, 100k and 1M rows
    python benchmarks/drift_speed.py --quick               # 10k and 100k rows
    python benchmarks/drift_speed.py --sizes 10000,100000  # chosen sizes
    python benchmarks/drift_speed.py --setup-evidently     # create the Evidently venv, then run

Data: 20 numeric features (normal, log-normal, Poisson, zero-inflated, uniform, some with
missing values) and 5 categorical ones (3 to 1,000 long-tailed categories), reference = current
= N rows, the current data mildly shifted on a few features. Each measurement runs in its own
process, which loads the data from Parquet, resets its peak-memory mark (``/proc/self/clear_refs``)
and reports the time and the peak resident memory above what it held before (after collecting
garbage and trimming the heap, so that reused pages do not hide a peak; for driftline also the
tracemalloc peak of a second run of the same block, and the larger of the two counts):

* **driftline check**: build the current window profile from the raw frame
  (``reference.empty_like()`` + ``add_frame``) and run the full check on it (``decide_drift`` and
  ``check_quality``); the reference profile is built beforehand, at training time (its build time
  is printed for information). Best time of 3 runs (largest peak), as for the sort bound, since
  the machine may be shared; Evidently, which takes minutes at 1M rows, runs once;
* **driftline stored**: the check as the monitor job runs it, on profiles read back from JSON:
  the reference plus the window's buckets (by default 60, the one-minute buckets of the monitor's
  default one-hour window, made as the serving recorder makes them: without reservoir samples,
  see ``BUCKET_SAMPLE_SIZE`` in monitoring/window.py), merged with ``merge_payloads``, then
  ``decide_drift`` and ``check_quality``. Its cost depends on the number of buckets and
  features, not of rows; the same check on one stored window profile (buckets already merged)
  is printed beside it (both best of 7);
* **np.sort bound**: ``np.sort`` of every numeric column of the current data, the bare cost of
  looking at each value once in order (what any quantile- or CDF-based test pays);
* **Evidently**: ``Report([DataDriftPreset()]).run(current, reference)``.

Evidently pins ``pandas<3`` in practice (0.7.x fails to import with pandas 3) and ``plotly<6``,
while driftline runs on pandas 3 and plotly 7, so it lives in its own virtual environment,
``.venv-bench-evidently`` next to ``.venv`` (or the interpreter in
``$DRIFTLINE_BENCH_EVIDENTLY_PYTHON``). ``--setup-evidently`` creates it with
``python -m venv .venv-bench-evidently`` and
``pip install "evidently>=0.7.20" "pandas>=2.1,<3" "plotly>=5.20,<6" "pyarrow>=14"``
(the pins of the ``bench`` extra of pyproject.toml). Without it the Evidently column shows the
reference figures of issue 3, labelled as such.

Targets (issue 3): at 1M rows >= 50x faster than Evidently with at most a third of its peak
memory and no slower than the sort bound (at smaller sizes the ratios are printed for
information: the check's fixed cost of a few milliseconds exceeds sorting 10k rows), and under
50 ms for a check over stored profiles at any size. Without Evidently, its column shows the
reference figures of issue 3 (6 s, 14 s and 171 s at 10k, 100k and 1M rows, 1.9 GB peak at 1M),
labelled as such. It also prints the cost of adding one micro-batch (5 rows x 10 features) to
a window profile, the serving hot path.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = ROOT / ".venv-bench-evidently"
N_NUMERIC, N_CATEGORICAL = 20, 5
CATEGORY_SIZES = (3, 10, 50, 200, 1000)
#: What --setup-evidently installs: the ``bench`` extra of pyproject.toml.
EVIDENTLY_PINS = ("evidently>=0.7.20", "pandas>=2.1,<3", "plotly>=5.20,<6", "pyarrow>=14")
#: Buckets of a stored window: the monitor's defaults, one hour of one-minute buckets.
DEFAULT_BUCKETS = 60
#: Evidently's figures on this kind of machine, from issue 3 (rows -> seconds, peak MiB or None).
ISSUE_EVIDENTLY = {10_000: (6.0, None), 100_000: (14.0, None), 1_000_000: (171.0, 1.9 * 1024)}
TARGET_SPEEDUP, TARGET_MEMORY, TARGET_STORED_MS = 50.0, 3.0, 50.0
#: Issue 15: reference build <= 2x the sort bound, file-to-file check >= 100x Evidently.
TARGET_BUILD, TARGET_FILE_SPEEDUP = 2.0, 100.0
#: Runs of the driftline check and of the sort bound (best time, largest peak); Evidently runs once.
REPEATS = 3


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


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so that
    a block's peak shows as growth of the resident set, not as reuse of pages already held."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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
        _release_free_memory()
        self.reset = _reset_peak()
        self.rss0 = _rss_kib()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.peak_mib = max(0, _peak_kib() - self.rss0) / 1024


def _best_ms(fn: Any, repeat: int = 7) -> tuple[float, float]:
    """Best of ``repeat`` wall and CPU times in ms (as ``timeit``: the least disturbed by other
    load on the machine; the CPU time is the process's own, which waiting does not inflate)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1000 * min(wall), 1000 * min(cpu)


def worker(method: str, directory: Path, buckets: int = DEFAULT_BUCKETS) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method}
    t0 = time.perf_counter()
    if method == "file":
        # `driftline check --reference FILE --current FILE`: read both files, build the
        # reference profile and the window on its bins, decide. Once in this process (what
        # the command runs), then the command itself for its exit status and verdicts.
        from driftline.comparison import compare_datasets

        runs = []
        for _ in range(REPEATS - 1):
            t0 = time.perf_counter()
            result = compare_datasets(
                directory / "reference.parquet", directory / "current.parquet"
            )
            runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "driftline",
                "check",
                "--reference",
                str(directory / "reference.parquet"),
                "--current",
                str(directory / "current.parquet"),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        out.update(
            seconds=min(runs),
            command_seconds=time.perf_counter() - t0,
            command_exit=done.returncode,
            drifted=result.data_drift.n_drifted,
            drifted_features=list(result.drifted_features),
            status=result.status,
        )
        return out
    reference = pd.read_parquet(directory / "reference.parquet")
    current = pd.read_parquet(directory / "current.parquet")
    numeric = [c for c in current.columns if c.startswith("num_")]
    out.update(rows=len(current), read_seconds=time.perf_counter() - t0)
    if method == "sort":
        runs = []
        for _ in range(REPEATS):
            with Measure() as m:
                for name in numeric:
                    np.sort(current[name].to_numpy())
            runs.append(m)
        out.update(seconds=min(r.seconds for r in runs), peak_mib=max(r.peak_mib for r in runs))
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
        from driftline.profiles import DatasetProfile, build_reference_profile, merge_payloads
        from driftline.quality import check_quality
        from driftline.schema import infer_schema

        schema = infer_schema(reference, None)
        builds = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            ref = build_reference_profile(reference, schema)
            builds.append(time.perf_counter() - t0)
        out["reference_build_seconds"] = min(builds)
        runs = []
        for _ in range(REPEATS):
            with Measure() as m:
                window = ref.empty_like(seed=1)
                window.add_frame(current)
                report = decide_drift(ref, window)
                check_quality(ref, window)
            runs.append(m)
        out.update(
            seconds=min(r.seconds for r in runs),
            peak_mib=max(r.peak_mib for r in runs),
            drifted=report.n_drifted,
            drifted_features=list(report.drifted_features),
        )
        # Cross-check of the peak: the same block again under tracemalloc (numpy reports its
        # buffers to it), which sees every allocation whether or not the pages were resident.
        _release_free_memory()
        tracemalloc.start()
        again = ref.empty_like(seed=1)
        again.add_frame(current)
        decide_drift(ref, again)
        check_quality(ref, again)
        out["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        del again
        # The monitor job's case: the reference and the window's buckets come from the store as
        # JSON; the buckets are merged, then checked. Buckets are made as the serving recorder
        # makes them (without reservoir samples).
        from driftline.monitoring.window import BUCKET_SAMPLE_SIZE

        ref_text, cur_text = json.dumps(ref.to_dict()), json.dumps(window.to_dict())
        bucket_texts = []
        for i, rows in enumerate(np.array_split(np.arange(len(current)), buckets)):
            bucket = ref.empty_like(seed=100 + i, sample_size=BUCKET_SAMPLE_SIZE)
            bucket.add_frame(current.iloc[rows])
            bucket_texts.append(json.dumps(bucket.to_dict()))
        # The monitor job holds profiles, not rows: drop the frames before timing it (a heap
        # of millions of objects would slow every garbage collection json.loads triggers).
        del reference, current, window, bucket
        _release_free_memory()

        def stored_check(texts: list[str]) -> None:
            stored_ref = DatasetProfile.from_dict(json.loads(ref_text))
            stored = merge_payloads([json.loads(t) for t in texts])
            decide_drift(stored_ref, stored)
            check_quality(stored_ref, stored)

        out["stored_check_ms"], out["stored_check_cpu_ms"] = _best_ms(
            lambda: stored_check(bucket_texts)
        )
        out["stored_window_ms"], out["stored_window_cpu_ms"] = _best_ms(
            lambda: stored_check([cur_text])
        )
        out["buckets"] = buckets
        out["bucket_json_kib"] = float(np.mean([len(t) for t in bucket_texts])) / 1024
        out["profile_json_kib"] = len(ref_text) / 1024
    else:
        raise SystemExit(f"unknown method {method!r}")
    return out


def hot_path() -> dict[str, float]:
    """Microseconds to add one micro-batch to a window profile (a serving bucket's)."""
    import timeit

    from driftline.monitoring.window import BUCKET_SAMPLE_SIZE
    from driftline.profiles import build_reference_profile
    from driftline.schema import infer_schema

    frame = make_frame(20_000, 3, shifted=False)
    columns = [*[f"num_{i:02d}" for i in range(8)], "cat_0", "cat_2"]
    small = frame[columns]
    reference = build_reference_profile(small, infer_schema(small, None))
    window = reference.empty_like(seed=1, sample_size=BUCKET_SAMPLE_SIZE)
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
    candidates = [
        os.environ.get("DRIFTLINE_BENCH_EVIDENTLY_PYTHON"),
        sys.executable,
        str(EVIDENTLY_VENV / "bin" / "python"),
    ]
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
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            *EVIDENTLY_PINS,
        ],
        check=True,
    )


def run_worker(
    python: str, method: str, directory: Path, timeout: float, buckets: int
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        done = subprocess.run(
            [
                python,
                __file__,
                "--worker",
                method,
                "--data",
                str(directory),
                "--buckets",
                str(buckets),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
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
    parser.add_argument(
        "--setup-evidently", action="store_true", help="create .venv-bench-evidently first"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds allowed per measurement"
    )
    parser.add_argument(
        "--buckets",
        type=int,
        default=DEFAULT_BUCKETS,
        help=f"buckets of the stored window (default {DEFAULT_BUCKETS})",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data), args.buckets)))
        return 0
    if args.setup_evidently:
        setup_evidently()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000]
        if args.quick
        else [10_000, 100_000, 1_000_000]
    )
    ev_python = evidently_python()
    print(
        f"driftline drift speed benchmark: {N_NUMERIC} numeric + {N_CATEGORICAL} categorical "
        f"features, reference = current rows; {os.cpu_count()} CPUs"
    )
    if ev_python is None:
        print(
            "Evidently: not installed (run with --setup-evidently); its column shows the "
            "REFERENCE figures of issue 3, not a measurement"
        )
    results: list[dict[str, Any]] = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="driftline-speed-") as tmp:
            directory = Path(tmp)
            write_data(n, directory)
            row: dict[str, Any] = {"rows": n}
            for method in ("driftline", "file", "sort", "evidently"):
                if method == "evidently" and ev_python is None:
                    if n in ISSUE_EVIDENTLY:
                        seconds, peak = ISSUE_EVIDENTLY[n]
                        row[method] = {"seconds": seconds, "peak_mib": peak, "reference": True}
                    continue
                python = ev_python if method == "evidently" else sys.executable
                assert python is not None
                row[method] = run_worker(python, method, directory, args.timeout, args.buckets)
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


def _peak(d: dict[str, Any]) -> float:
    """driftline's peak memory: the larger of RSS growth and the tracemalloc peak."""
    return max(float(d["peak_mib"]), float(d.get("traced_peak_mib", 0.0)), 0.1)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _print_row(row: dict[str, Any]) -> None:
    n = row["rows"]
    print(f"\n== {n:,} rows ==")
    print(f"{'method':<34}{'time':>14}{'peak memory':>16}")
    labels = {
        "driftline": "driftline check",
        "file": "driftline check, file to file",
        "sort": "np.sort bound",
        "evidently": "Evidently",
    }
    for method in ("driftline", "file", "sort", "evidently"):
        result = row.get(method)
        if result is None:
            continue
        label = labels[method]
        if method == "evidently" and "version" in result:
            label += f" {result['version']}"
        if result.get("reference"):
            label += " (issue 3 REFERENCE)"
        peak = result.get("peak_mib")
        memory = f"{peak:.1f} MiB" if peak is not None else "-"
        print(f"{label:<34}{_fmt_time(result):>14}{memory:>16}")
        if method == "driftline" and "traced_peak_mib" in result:
            print(
                f"{'  (same block under tracemalloc)':<34}{'':>14}"
                f"{result['traced_peak_mib']:>12.1f} MiB"
            )
    d = row["driftline"]
    if "stored_check_ms" in d:
        print(
            f"{'driftline stored, ' + str(d['buckets']) + ' buckets':<34}"
            f"{d['stored_check_ms']:>11.1f} ms"
            f"   (CPU {d['stored_check_cpu_ms']:.1f} ms; bucket JSON "
            f"{d['bucket_json_kib']:.0f} KiB each)"
        )
        print(
            f"{'driftline stored, merged window':<34}{d['stored_window_ms']:>11.1f} ms"
            f"   (CPU {d['stored_window_cpu_ms']:.1f} ms; reference JSON "
            f"{d['profile_json_kib']:.0f} KiB)"
        )
        print(
            f"  reference profile build (training time): {d['reference_build_seconds']:.3f} s; "
            f"drifted features: {d['drifted']} {d['drifted_features']}"
        )
    ev = row.get("evidently", {})
    if "seconds" in ev and "seconds" in d:
        memory = (
            f", peak memory x{ev['peak_mib'] / _peak(d):.1f}"
            if ev.get("peak_mib") is not None
            else ""
        )
        drifted = "" if ev.get("reference") else f"; Evidently drifted columns: {ev.get('drifted')}"
        print(f"  Evidently / driftline: time x{ev['seconds'] / d['seconds']:.1f}{memory}{drifted}")
    s = row.get("sort", {})
    if "seconds" in s and "seconds" in d:
        print(
            f"  driftline / np.sort bound: check x{d['seconds'] / s['seconds']:.2f}, "
            f"reference build x{d['reference_build_seconds'] / s['seconds']:.2f}"
        )
    f = row.get("file", {})
    if "seconds" in f:
        print(
            f"  file to file (read + build + check): {f['seconds']:.3f} s in process, "
            f"{f['command_seconds']:.3f} s as the command (exit {f['command_exit']}, "
            f"interpreter start and imports included); status {f['status']}, drifted "
            f"{f['drifted']} {f['drifted_features']}"
        )
        if "seconds" in ev and "read_seconds" in ev:
            whole = ev["seconds"] + ev["read_seconds"]
            print(
                f"  Evidently file to file (read {ev['read_seconds']:.2f} s + run): {whole:.1f} s,"
                f" x{whole / f['seconds']:.0f} driftline's"
            )


def _print_summary(results: list[dict[str, Any]]) -> None:
    print("\n== Summary ==")
    header = (
        f"{'rows':>10}{'driftline s':>13}{'MiB':>8}{'np.sort s':>11}{'Evidently s':>13}"
        f"{'MiB':>8}{'Ev/dl time':>12}{'dl/sort':>9}{'Ev/dl mem':>11}{'stored ms':>11}"
    )
    print(header)
    for row in results:
        d, s, ev = row["driftline"], row.get("sort", {}), row.get("evidently", {})
        if "seconds" not in d:
            print(f"{row['rows']:>10,}  driftline failed: {d.get('error')}")
            continue
        ev_s = (
            f"{ev['seconds']:.2f}" + ("*" if ev.get("reference") else "")
            if ev.get("seconds")
            else "-"
        )
        ev_m = f"{ev['peak_mib']:.0f}" if ev.get("peak_mib") is not None else "-"
        speed = f"x{ev['seconds'] / d['seconds']:.0f}" if ev.get("seconds") else "-"
        memory = f"x{ev['peak_mib'] / _peak(d):.1f}" if ev.get("peak_mib") is not None else "-"
        sort = f"{s['seconds']:.3f}" if "seconds" in s else "-"
        ratio = f"x{d['seconds'] / s['seconds']:.2f}" if "seconds" in s else "-"
        print(
            f"{row['rows']:>10,}{d['seconds']:>13.3f}{_peak(d):>8.1f}{sort:>11}{ev_s:>13}"
            f"{ev_m:>8}{speed:>12}{ratio:>9}{memory:>11}{d['stored_check_ms']:>11.1f}"
        )
    if any(row.get("evidently", {}).get("reference") for row in results):
        print("  * Evidently not installed here: issue 3's REFERENCE figures, not a measurement")

    print("\n== Targets ==")
    big = next((r for r in results if r["rows"] >= 1_000_000), None)
    if big is None or "seconds" not in big["driftline"]:
        print("at 1M rows: not measured (run without --quick / with --sizes 1000000)")
    else:
        d, s, ev = big["driftline"], big.get("sort", {}), big.get("evidently", {})
        label = "Evidently (issue 3 reference figures)" if ev.get("reference") else "Evidently"
        if ev.get("seconds"):
            speed = ev["seconds"] / d["seconds"]
            print(
                f"{_verdict(speed >= TARGET_SPEEDUP)}  1M rows: {speed:.0f}x faster than "
                f"{label} (target >= {TARGET_SPEEDUP:.0f}x)"
            )
        else:
            print(f"FAIL  1M rows: Evidently not measured: {ev.get('error', 'not installed')}")
        if ev.get("peak_mib") is not None:
            share = _peak(d) / ev["peak_mib"]
            print(
                f"{_verdict(share <= 1 / TARGET_MEMORY)}  1M rows: peak memory "
                f"{_peak(d):.0f} MiB = {share:.1%} of {label}'s {ev['peak_mib']:.0f} MiB "
                f"(target <= 1/{TARGET_MEMORY:.0f})"
            )
        if "seconds" in s:
            ratio = d["seconds"] / s["seconds"]
            print(
                f"{_verdict(ratio <= 1.0)}  1M rows: window check {d['seconds']:.2f} s = "
                f"{ratio:.2f}x the np.sort bound {s['seconds']:.2f} s (target <= 1x)"
            )
            build = d["reference_build_seconds"] / s["seconds"]
            print(
                f"{_verdict(build <= TARGET_BUILD)}  1M rows: reference build "
                f"{d['reference_build_seconds']:.2f} s = {build:.2f}x the np.sort bound "
                f"(target <= {TARGET_BUILD:.0f}x)"
            )
        f = big.get("file", {})
        if "seconds" in f and ev.get("seconds") and "read_seconds" in ev:
            whole = ev["seconds"] + ev["read_seconds"]
            speed = whole / f["seconds"]
            print(
                f"{_verdict(speed >= TARGET_FILE_SPEEDUP)}  1M rows: file to file "
                f"(read + build + check) {f['seconds']:.2f} s, {speed:.0f}x faster than "
                f"Evidently's read + run {whole:.1f} s (target >= {TARGET_FILE_SPEEDUP:.0f}x)"
            )
            same = (
                ev.get("drifted") is not None
                and int(ev["drifted"]) == f["drifted"]
                and f["drifted_features"] == d.get("drifted_features")
                and f["command_exit"] == {"ok": 0, "warning": 4, "critical": 3}.get(f["status"])
            )
            print(
                f"{_verdict(same)}  1M rows: same verdicts: file to file drifted "
                f"{f['drifted_features']} (command exit {f['command_exit']}), in-memory check "
                f"{d.get('drifted_features')}, Evidently {ev.get('drifted')} drifted columns"
            )
        elif "seconds" in f:
            print("FAIL  1M rows: file to file not compared: Evidently not measured")
    stored = [r["driftline"] for r in results if "stored_check_ms" in r["driftline"]]
    if stored:
        worst = max(stored, key=lambda d: d["stored_window_ms"])
        print(
            f"{_verdict(worst['stored_window_ms'] < TARGET_STORED_MS)}  check over a stored "
            f"window profile (reference + window JSON) < {TARGET_STORED_MS:.0f} ms at every "
            f"size: worst {worst['stored_window_ms']:.1f} ms ({worst['rows']:,} rows)"
        )
        worst = max(stored, key=lambda d: d["stored_check_ms"])
        print(
            f"{_verdict(worst['stored_check_ms'] < TARGET_STORED_MS)}  check over the window's "
            f"{worst['buckets']} stored buckets (parse, merge, decide) < "
            f"{TARGET_STORED_MS:.0f} ms at every size: worst {worst['stored_check_ms']:.1f} ms, "
            f"CPU {worst['stored_check_cpu_ms']:.1f} ms ({worst['rows']:,} rows)"
        )


if __name__ == "__main__":
    sys.exit(main())
