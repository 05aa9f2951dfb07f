"""The cost of a Feast lookup on the /predict hot path: the same model, the same server, the
same rows, sent as entity keys (features fetched from Feast's Redis online store) and as
inline features, side by side in one run.

    python benchmarks/feast_lookup.py            # 2 x 3 runs of 8 s at concurrency 1 and 8
    python benchmarks/feast_lookup.py --quick    # 2-second runs, for a smoke test

Needs the ``feast`` extra and Redis on 127.0.0.1:6379. It copies ``examples/feast`` into a
temporary folder under a fresh Feast project, generates its data, runs ``feast apply`` and
``materialize`` (Python API), trains a model with ``driftline train --feast-repo``, and serves
it with ``DRIFTLINE_FEAST_REPO`` set. The load client (``serving.py``'s) alternates the two
request kinds and repeats; the best run of each is kept (a shared machine only ever slows a
run down). Prints requests/s, p50 and p99 of each and the lookup's added p50/p99. The online
rows are torn down at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "feast"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(EXAMPLE))

from generate_data import generate  # noqa: E402

import serving  # noqa: E402
from serving import Result, load, server  # noqa: E402

CONCURRENCY = (1, 8)
FEATURES = ("txn_count_7d", "avg_amount_7d", "tickets_30d")


def prepare(root: Path) -> tuple[Path, Path, list[str], list[str]]:
    """An applied, materialized repository, a trained home, and the two request bodies."""
    from driftline.featurestore import FeatureRepo

    repo = root / "repo"
    repo.mkdir()
    shutil.copy(EXAMPLE / "feature_repo" / "definitions.py", repo / "definitions.py")
    project = f"driftline_bench_{uuid.uuid4().hex[:8]}"
    text = (EXAMPLE / "feature_repo" / "feature_store.yaml").read_text()
    (repo / "feature_store.yaml").write_text(
        re.sub(r"(?m)^project: .*$", f"project: {project}", text)
    )
    stats_path, entities_path = generate(repo, customers=500, days=20, events=3_000, seed=7)
    cwd = Path.cwd()
    os.chdir(repo)
    try:
        sys.path.insert(0, str(repo))
        import definitions

        store = FeatureRepo(repo).store
        store.apply([definitions.customer, definitions.customer_stats])
        store.materialize(datetime.now(UTC) - timedelta(days=60), datetime.now(UTC))
    finally:
        os.chdir(cwd)
    home = root / "home"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "--home",
            str(home),
            "train",
            str(entities_path),
            "--target",
            "churned",
            "--model",
            "logreg",
            "--feast-repo",
            str(repo),
            "--entity",
            "customer_id",
        ],
        check=True,
        capture_output=True,
    )
    stats = pd.read_parquet(stats_path).sort_values("event_timestamp")
    last = stats.groupby("customer_id").last()
    channels = ("web", "app", "branch")
    by_entity, inline = [], []
    for n, customer in enumerate(last.index[:500]):
        channel = channels[n % 3]
        by_entity.append(
            json.dumps(
                {"entities": {"customer_id": int(customer)}, "features": {"channel": channel}}
            )
        )
        values = {f: last.loc[customer, f].item() for f in FEATURES}
        inline.append(json.dumps({"features": {"channel": channel, **values}}))
    return repo, home, by_entity, inline


def _wait_ready(port: int, proc: subprocess.Popen[bytes], path: str) -> None:
    """serving.py's readiness wait with a longer deadline: the server imports Feast and opens
    the repository before it is ready (over a minute on a busy shared machine)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError("server not ready within 300 s")


def run(seconds: float, repeats: int) -> list[dict[str, Any]]:
    from driftline.featurestore import FeatureRepo

    serving.wait_ready = _wait_ready  # used by serving.server

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="driftline-feast-bench-") as tmp:
        repo, home, by_entity, inline = prepare(Path(tmp))
        try:
            with server("driftline", home, home, {"DRIFTLINE_FEAST_REPO": str(repo)}) as port:
                load(port, by_entity, 4, min(seconds, 2.0), ws=False)  # warm-up: Feast, model
                load(port, inline, 4, min(seconds, 2.0), ws=False)
                for concurrency in CONCURRENCY:
                    best: dict[str, Result] = {}
                    for _ in range(repeats):
                        for name, bodies in (
                            ("inline features", inline),
                            ("entity lookup", by_entity),
                        ):
                            result = load(port, bodies, concurrency, seconds, ws=False)
                            if result.errors:
                                raise RuntimeError(f"{name}: {result.errors} failed requests")
                            if name not in best or result.p50_ms < best[name].p50_ms:
                                best[name] = result
                    for name, result in best.items():
                        rows.append({"concurrency": concurrency, "kind": name, **result.__dict__})
        finally:
            FeatureRepo(repo).store.teardown()
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'concurrency':>11}  {'requests':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(
            f"{row['concurrency']:>11}  {row['kind']:<16} {row['rps']:>8.0f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
        )
    for concurrency in CONCURRENCY:
        pair = {r["kind"]: r for r in rows if r["concurrency"] == concurrency}
        base, feast = pair["inline features"], pair["entity lookup"]
        added = feast["p50_ms"] - base["p50_ms"]
        print(
            f"concurrency {concurrency}: the lookup adds {added:+.2f} ms "
            f"at p50 ({feast['p50_ms'] / base['p50_ms']:.2f}x), "
            f"{feast['p99_ms'] - base['p99_ms']:+.2f} ms at p99 "
            f"({feast['p99_ms'] / base['p99_ms']:.2f}x); throughput "
            f"{feast['rps'] / base['rps']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2-second runs, one repeat")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds, repeats = (2.0, 1) if args.quick else (args.seconds, args.repeats)
    report(run(seconds, repeats))


if __name__ == "__main__":
    main()
