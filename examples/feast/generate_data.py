"""Data for driftline's Feast example: daily customer statistics and labelled events.

Writes, under ``--repo`` (default: ``feature_repo/`` beside this file):

* ``data/customer_stats.parquet``: one row per customer and day (the feature view's source);
* ``data/entities.parquet``: label events, each a customer, an event timestamp, the channel
  the request came from (sent inline at serving time) and whether the customer churned.

A customer's churn depends on its statistics *at the event's time* (they change from day to
day), so only a point-in-time join gives a model what it will see when serving.

    python examples/feast/generate_data.py --customers 300 --days 30
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

CHANNELS = ("web", "app", "branch")
#: One timestamp type on both sides of the as-of join (pandas 2 and 3 infer different units).
TIMESTAMP = "datetime64[ns, UTC]"


def generate(
    repo: Path, *, customers: int = 300, days: int = 30, events: int = 3_000, seed: int = 0
) -> tuple[Path, Path]:
    """Write the two Parquet files; return their paths."""
    rng = np.random.default_rng(seed)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=days)
    ids = np.arange(1, customers + 1)
    engagement = rng.normal(0.0, 1.0, customers)  # latent, drifts from day to day
    rows = []
    for day in range(days + 1):
        ts = start + timedelta(days=day)
        engagement = 0.85 * engagement + rng.normal(0.0, 0.55, customers)
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "event_timestamp": ts,
                    "txn_count_7d": rng.poisson(np.exp(2.0 + 0.5 * engagement)).astype("int64"),
                    "avg_amount_7d": np.round(rng.gamma(4.0, 12.0 + 4.0 * np.tanh(engagement)), 2),
                    "tickets_30d": rng.poisson(np.exp(-0.3 - 0.7 * engagement)).astype("int64"),
                }
            )
        )
    stats = pd.concat(rows, ignore_index=True)
    stats["event_timestamp"] = stats["event_timestamp"].astype(TIMESTAMP)
    # Label events fall between daily snapshots, after the first one.
    offsets = rng.uniform(1.0, days, events)
    labelled = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, events).astype("int64"),
            "event_timestamp": [start + timedelta(days=float(o)) for o in offsets],
            "channel": rng.choice(CHANNELS, events),
        }
    )
    labelled["event_timestamp"] = labelled["event_timestamp"].astype(TIMESTAMP)
    # Churn follows the statistics valid at the event's time (the last snapshot before it).
    asof = pd.merge_asof(
        labelled.sort_values("event_timestamp"),
        stats.sort_values("event_timestamp"),
        on="event_timestamp",
        by="customer_id",
    ).sort_index()
    score = (
        -0.25 * asof["txn_count_7d"]
        + 0.9 * asof["tickets_30d"]
        - 0.01 * asof["avg_amount_7d"]
        + np.where(asof["channel"] == "branch", 0.8, 0.0)
        + 1.5
    )
    churn = rng.uniform(size=events) < 1.0 / (1.0 + np.exp(-score))
    labelled["churned"] = np.where(churn, "yes", "no")
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    stats_path, entities_path = data / "customer_stats.parquet", data / "entities.parquet"
    stats.to_parquet(stats_path, index=False)
    labelled.to_parquet(entities_path, index=False)
    return stats_path, entities_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).parent / "feature_repo")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    stats, entities = generate(
        args.repo, customers=args.customers, days=args.days, events=args.events, seed=args.seed
    )
    print(f"wrote {stats} and {entities}")


if __name__ == "__main__":
    main()
