"""`driftline simulate`: drive any driftline server the way the demo drives its own.

Traffic goes to ``POST /predict`` at a steady rate, each row's true label to ``POST /labels``
after a delay, and from a chosen moment on the rows come from a drifted source: the demo's
drifted loan applications by default, or a file the user made (for example with
``driftline data inject``). The sender is the demo's own (:func:`driftline.demo.drive_traffic`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import pandas as pd
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from driftline.data.synthetic import TARGET
from driftline.demo import DemoOptions, DemoStats, drive_traffic, traffic_rows
from driftline.errors import ConfigurationError, DataError

__all__ = ["file_rows", "run_simulation", "simulation_table"]


def file_rows(
    normal: pd.DataFrame, drifted: pd.DataFrame | None
) -> Callable[[int, int, bool], pd.DataFrame]:
    """Rows for :func:`drive_traffic` from tables, cycled: ``normal`` before the drift,
    ``drifted`` (or ``normal`` again when None) after it."""
    for name, frame in (("data", normal), ("drifted data", drifted)):
        if frame is not None and frame.empty:
            raise DataError(f"the {name} file has no rows")

    def rows(n: int, chunk: int, is_drifted: bool) -> pd.DataFrame:
        source = drifted if is_drifted and drifted is not None else normal
        start = (chunk * n) % len(source)
        picked = [(start + i) % len(source) for i in range(n)]
        return source.iloc[picked].reset_index(drop=True)

    return rows


def simulation_table(stats: DemoStats, url: str, options: DemoOptions) -> Group:
    """The live summary: what the sender did and what the server answered."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    elapsed = stats.elapsed
    table.add_row("server", url)
    table.add_row("elapsed", f"{min(elapsed, options.duration):.0f} s of {options.duration:.0f} s")
    rate = stats.ok / elapsed if elapsed > 0 else 0.0
    table.add_row("requests", f"{stats.sent:,} sent · {stats.ok:,} answered · {rate:.0f}/s")
    table.add_row(
        "errors", f"{stats.errors:,}" + (f" (last: {stats.last_error})" if stats.errors else "")
    )
    p50, p95, p99 = (stats.percentile(q) for q in (50, 95, 99))
    if p50 is not None:
        table.add_row("latency", f"p50 {p50:.1f} ms · p95 {p95:.1f} ms · p99 {p99:.1f} ms")
    accuracy = f" · accuracy so far {stats.accuracy:.3f}" if stats.accuracy is not None else ""
    table.add_row("labels", f"{stats.labels_sent:,} sent{accuracy}")
    versions = ", ".join(map(str, sorted(stats.model_versions))) or "-"
    table.add_row("model versions", versions)
    if stats.drift_started is not None:
        table.add_row("drift", f"since {stats.drift_started:.0f} s (sample {stats.drift_sample:,})")
    elif options.drift_at is not None:
        table.add_row("drift", f"at {options.drift_at * options.duration:.0f} s")
    return Group(table)


def run_simulation(
    url: str,
    options: DemoOptions,
    console: Console,
    *,
    rows: Callable[[int, int, bool], pd.DataFrame] | None = None,
    target: str = TARGET,
    drift_note: str = "traffic switched to the drifted source",
    token: str | None = None,
    live: bool = True,
) -> DemoStats:
    """Send traffic to ``url`` for ``options.duration`` seconds; returns what was seen.

    Ctrl-C stops sending, sends the labels still due, and returns.
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"url must start with http:// or https://, got {url!r}")
    make_rows = rows or (
        lambda n, chunk, drifted: traffic_rows(n, chunk, seed=options.seed, drifted=drifted)
    )
    headers = {"Authorization": f"Bearer {token}"} if token else None
    stats = DemoStats()
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        traffic = asyncio.create_task(
            drive_traffic(
                url.rstrip("/"),
                options,
                stats,
                stop,
                rows=make_rows,
                drift_note=drift_note,
                target=target,
                headers=headers,
            )
        )
        if not live:
            await traffic
            return
        with Live(
            simulation_table(stats, url, options), console=console, refresh_per_second=4
        ) as view:
            while not traffic.done():
                view.update(simulation_table(stats, url, options))
                await asyncio.sleep(0.25)
            view.update(simulation_table(stats, url, options))
        await traffic

    asyncio.run(main())
    return stats
