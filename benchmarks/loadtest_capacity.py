"""The highest request rate `driftline serve` sustains with p99 < 100 ms, logging on.

    python benchmarks/loadtest_capacity.py                   # logreg and hgb, 1 and 2 workers
    python benchmarks/loadtest_capacity.py --models logreg --workers 1 --step-seconds 4

For each model (trained on the demo's loan data) and worker count, a `driftline serve` runs in
its own process on 127.0.0.1 with everything on (validation, prediction logging to its SQLite
store, metrics, micro-batching). `driftline loadtest`'s open-loop generator (this process)
then steps the rate up: each step ramps for a second and holds; a step passes when p99 (from
each request's *scheduled* time) is under the bound, nothing failed, nothing was left unsent,
and every acknowledged prediction is in the store. The search doubles until a step fails, then
bisects between the last pass and the first failure. A rate gets ``--tries`` tries (2) and
passes when one does: noise on a shared machine only ever slows a run down. The client shares
the machine with the server; its send lag is printed so that a client-bound result (a lag near
the latency) can be told apart.

The server runs with ``OMP_NUM_THREADS=1`` as the Dockerfile sets it (``--omp-threads ''`` to
leave it unset): scikit-learn's histogram gradient boosting predicts with OpenMP threads, and on
a busy machine, one request at a time, they wait on each other — measured here under shared
load at 25 req/s: p50 2-10 s unset, 6-22 ms with one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from driftline.config import Settings
from driftline.data.synthetic import TARGET, generate_loans
from driftline.loadtest import LoadtestOptions, LoadtestResult, run_loadtest
from driftline.registry import Registry
from driftline.store import open_store
from driftline.training import train_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _home_with(model: str, root: Path) -> Path:
    home = root / model
    settings = Settings(home=home)
    settings.ensure_home()
    bundle = train_model(generate_loans(5_000, seed=1), TARGET, kind=model, seed=0).bundle
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(bundle, actor="benchmark")
    store.dispose()
    return home


def _serve(home: Path, workers: int, omp_threads: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_HOME"] = str(home)
    env["DRIFTLINE_SCHEDULER"] = "false"  # the serving path only; the monitor is not measured
    env.pop("OMP_NUM_THREADS", None)
    if omp_threads:  # as the Dockerfile sets it
        env["OMP_NUM_THREADS"] = omp_threads
    log = open(home / f"serve-{port}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "driftline",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server not ready; see {log.name}")


def _step(
    url: str, rate: float, seconds: float, bound_ms: float, tries: int
) -> tuple[bool, LoadtestResult]:
    """One rate, up to ``tries`` times: noise on a shared machine only ever slows a run down,
    so a rate passes when any try passes."""
    for attempt in range(tries):
        options = LoadtestOptions(
            rate=rate,
            duration=seconds + 1,
            ramp=1.0,
            max_in_flight=4_000,
            timeout=10,
            seed=int(rate) + attempt,
        )
        result = asyncio.run(run_loadtest(url, options))
        ok = (
            not result.errors
            and not result.not_sent
            and result.all_stored is True
            and result.p99_ms is not None
            and result.p99_ms < bound_ms
        )
        print(_line(result, ok), flush=True)
        if ok:
            break
    return ok, result


def _line(result: LoadtestResult, ok: bool) -> str:
    return (
        f"  rate {result.target_rate:7.0f}  achieved {result.achieved_rate:7.1f}/s  "
        f"p50 {result.p50_ms or 0:6.1f}  p95 {result.p95_ms or 0:6.1f}  "
        f"p99 {result.p99_ms or 0:7.1f} ms  errors {sum(result.errors.values())}  "
        f"unsent {result.not_sent}  stored {'all' if result.all_stored else 'NOT all'}  "
        f"client lag p99 {result.client_lag_p99_ms:.1f} ms  -> {'pass' if ok else 'FAIL'}"
    )


def search(
    url: str, *, start: float, bound_ms: float, seconds: float, cap: float, tries: int
) -> float:
    best, rate, failed = 0.0, start, None
    while rate <= cap:
        ok, _ = _step(url, rate, seconds, bound_ms, tries)
        if not ok:
            failed = rate
            break
        best, rate = rate, rate * 2
    if failed is None:
        return best
    for _ in range(3):  # bisect between the last pass and the first failure
        rate = round((best + failed) / 2)
        if rate in (best, failed):
            break
        ok, _ = _step(url, rate, seconds, bound_ms, tries)
        best, failed = (rate, failed) if ok else (best, rate)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["logreg", "hgb"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--start", type=float, default=50.0)
    parser.add_argument("--cap", type=float, default=4_000.0)
    parser.add_argument(
        "--omp-threads",
        default="1",
        help="OMP_NUM_THREADS of the server, as in the image ('' leaves it unset).",
    )
    parser.add_argument("--tries", type=int, default=2, help="Tries per rate (best counts).")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start; "
        f"server OMP_NUM_THREADS={args.omp_threads or '(unset)'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="driftline-capacity-") as tmp:
        homes = {m: _home_with(m, Path(tmp)) for m in args.models}
        summary = []
        for model in args.models:
            for workers in args.workers:
                print(f"{model}, {workers} worker(s):", flush=True)
                proc, url = _serve(homes[model], workers, args.omp_threads)
                try:
                    best = search(
                        url,
                        start=args.start,
                        bound_ms=args.p99_ms,
                        seconds=args.step_seconds,
                        cap=args.cap,
                        tries=args.tries,
                    )
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
                summary.append((model, workers, best))
        print(f"\nhighest rate with p99 < {args.p99_ms:g} ms, every prediction logged and stored:")
        for model, workers, best in summary:
            print(f"  {model:7s} {workers} worker(s): {best:7.0f} req/s")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
