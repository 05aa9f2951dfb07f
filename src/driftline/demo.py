"""`driftline demo`: the whole story on one machine, with no services.

Long on purpose (600+ lines): one scripted story, read top to bottom.

1. generate a seeded loan-applications dataset and train and register a champion;
2. start the API on 127.0.0.1 (in this process);
3. drive traffic through ``POST /predict`` at a steady rate, and send each request's true label
   to ``POST /labels`` after a delay, as ground truth arrives in real life;
4. inject drift part-way: the monitor reports it, the closed loop retrains a challenger,
   gates it, shadows it, canaries it and promotes it; then, in a second act, a deliberately
   bad challenger is put into canary and the SLO guard withdraws it;
5. show a live summary (requests, latency percentiles, accuracy on the labels so far, the
   rollout) with the URLs to open, and at the end a timeline of what happened, in seconds and
   samples after the drift began. Ctrl-C stops cleanly (the server drains its log first).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd
import uvicorn
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from driftline.config import Settings
from driftline.data.inject import inject_drift
from driftline.data.synthetic import TARGET, generate_loans, label_loans
from driftline.errors import ConfigurationError
from driftline.loop.controller import start_rollout
from driftline.registry import CHAMPION, Registry
from driftline.schema import label_text
from driftline.service.app import create_app
from driftline.store import open_store
from driftline.training import train_model

__all__ = ["DemoOptions", "DemoStats", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 120.0
    rate: float = 50.0
    seed: int = 7
    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "hgb"
    train_rows: int = 20_000
    label_delay: float = 2.0
    concurrency: int = 16
    #: When (share of the duration) drift is injected; ``None``: no drift.
    drift_at: float | None = 0.3
    #: How often the in-process monitor reports, and over how much traffic.
    monitor_every: float = 5.0
    monitor_window: float = 30.0
    #: Run the closed loop (retrain, gate, shadow, canary, promote) inside the API.
    loop: bool = True
    #: After the promotion, put a deliberately bad challenger into canary.
    second_act: bool = True
    #: Request ids are ``{id_prefix}-{seed}-{n}``.
    id_prefix: str = "demo"
    #: End as soon as the story is told (act two's challenger withdrawn or rolled back, or
    #: the first rollout finished without act two) instead of always at ``duration``, which
    #: is then the longest the demo runs: a busy machine needs longer for the same story.
    until_story_ends: bool = False


def demo_settings(settings: Settings, options: DemoOptions) -> Settings:
    """The demo runs the monitor on a short clock so the story fits in a couple of minutes."""
    return settings.model_copy(
        update={
            "host": options.host,
            "port": options.port,
            "monitor_interval_seconds": options.monitor_every,
            "monitor_window_seconds": options.monitor_window,
            "monitor_bucket_seconds": 5.0,
            "monitor_flush_seconds": 1.0,
            "concept_poll_seconds": 1.0,
            "reload_poll_seconds": 1.0,
            "scheduler": True,
            # The closed loop on the same short clock: a few seconds of traffic per stage.
            "loop_enabled": options.loop,
            "loop_interval_seconds": 1.0,
            "retrain_min_labels": max(400, round(options.rate * 16)),
            "retrain_cooldown_seconds": options.duration * 10,
            # A challenger rejected on the first drifted labels is retried once there are half
            # as many again, as a user would configure it: the story does not hinge on timing.
            "retrain_retry_growth": 1.5,
            "retrain_retry_seconds": 3.0,
            "shadow_min_samples": max(100, round(options.rate * 2)),
            "canary_share": 0.5,
            "canary_min_samples": max(100, round(options.rate * 2)),
            "watch_seconds": 4.0,
            "watch_min_samples": max(100, round(options.rate * 2)),
        }
    )


def traffic_rows(n: int, chunk: int, *, seed: int, drifted: bool) -> pd.DataFrame:
    """Live applications: like the training data, or after the world changed.

    After the change, applicants carry far more debt (debt-to-income up two standard
    deviations), earn more (income +0.5 SD), borrow more for small businesses, and the
    high-debt applicants — now a third of the traffic — repay by a different rule (concept
    drift in a segment): what the champion learned is partly wrong now.
    """
    frame = generate_loans(n, seed=seed + 1_000 + chunk)
    if not drifted:
        return frame
    s = seed + chunk
    frame = inject_drift(frame, "mean_shift", feature="debt_to_income", strength=2.0, seed=s)
    frame = inject_drift(frame, "mean_shift", feature="income", strength=0.5, seed=s)
    frame = inject_drift(frame, "category_mix", feature="purpose", strength=0.15, seed=s)
    frame[TARGET] = label_loans(
        frame, concept="segment", rng=np.random.default_rng(seed + 7_000 + chunk)
    )
    return frame


@dataclass
class DemoStats:
    """What the traffic driver saw, from the client's side."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    ok: int = 0
    errors: int = 0
    labels_sent: int = 0
    correct: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5_000))
    model_versions: set[int] = field(default_factory=set)
    last_error: str = ""
    drift_started: float | None = None
    drift_sample: int | None = None
    latest_report: dict[str, Any] | None = None
    rollout: dict[str, Any] | None = None
    bad_version: int | None = None
    #: (seconds since start, samples sent, what happened), in order.
    timeline: list[tuple[float, int, str]] = field(default_factory=list)
    seen_events: set[str] = field(default_factory=set)

    def mark(self, key: str, text: str) -> None:
        """Record a story event once."""
        if key in self.seen_events:
            return
        self.seen_events.add(key)
        self.timeline.append((self.elapsed, self.sent, text))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.fromiter(self.latencies_ms, dtype=float), q))

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labels_sent if self.labels_sent else None

    def totals(self) -> dict[str, Any]:
        """The run's totals and timeline, as `demo --json` and `simulate --json` print them."""
        return {
            "sent": self.sent,
            "answered": self.ok,
            "errors": self.errors,
            "labels_sent": self.labels_sent,
            "accuracy": self.accuracy,
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "model_versions": sorted(self.model_versions),
            "drift_started_s": self.drift_started,
            "last_error": self.last_error or None,
            "timeline": [
                {"t": t, "samples": sent, "event": text} for t, sent, text in self.timeline
            ],
        }


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class ServerThread:
    """The API in a background thread of this process (uvicorn installs no signal handlers
    outside the main thread, so Ctrl-C stays with the demo)."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="driftline-api", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError("the API did not start; see the log above")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def train_champion(settings: Settings, options: DemoOptions, say: Callable[[str], None]) -> int:
    """Train and register the demo's model and make it champion; returns its version."""
    say(f"generating {options.train_rows:,} loan applications (seed {options.seed})")
    frame = generate_loans(options.train_rows, seed=options.seed)
    say(f"training a {options.model} model")
    result = train_model(frame, TARGET, kind=options.model, seed=options.seed)
    metrics = result.metrics
    say(
        f"holdout accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['f1_macro']:.3f}, "
        f"ROC AUC {metrics['roc_auc']:.3f}"
    )
    store = open_store(settings.database_url)
    try:
        registry = Registry.from_settings(settings, store)
        version = registry.register(result.bundle, actor="demo", reason="demo baseline")
        if registry.alias(CHAMPION) != version:
            registry.promote(version, actor="demo", reason="demo baseline")
    finally:
        store.dispose()
    say(f"registered version {version} as champion")
    return version


async def drive_traffic(
    base_url: str,
    options: DemoOptions,
    stats: DemoStats,
    stop: asyncio.Event,
    *,
    rows: Callable[[int, int, bool], pd.DataFrame] | None = None,
    drift_note: str = (
        "drift injected: debt-to-income +2 SD, income +0.5 SD, more small-business "
        "loans, a new repayment rule for high-debt applicants"
    ),
    target: str = TARGET,
    headers: dict[str, str] | None = None,
) -> None:
    """Send predictions at ``options.rate`` per second and their labels after a delay;
    switch to drifted traffic at ``options.drift_at`` of the duration.

    ``rows(n, chunk, drifted)`` makes the next ``n`` rows (features and the ``target`` column,
    whose value is sent as the label); by default the demo's loan applications. ``headers`` go
    with every request (the labels token, when one is set)."""
    make_rows = rows or (
        lambda n, chunk, drifted: traffic_rows(n, chunk, seed=options.seed, drifted=drifted)
    )
    drift_time = (
        stats.started + options.drift_at * options.duration
        if options.drift_at is not None
        else None
    )
    feature_names: list[str] | None = None
    pending_labels: deque[tuple[float, str, Any, Any]] = deque()
    limit = asyncio.Semaphore(options.concurrency)
    interval = 1.0 / options.rate
    deadline = stats.started + options.duration

    async with httpx.AsyncClient(base_url=base_url, timeout=10.0, headers=headers) as client:

        async def one(request_id: str, features: dict[str, Any], truth: Any) -> None:
            async with limit:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/predict", json={"request_id": request_id, "features": features}
                    )
                except httpx.HTTPError as exc:
                    stats.errors += 1
                    stats.last_error = str(exc)
                    return
                stats.latencies_ms.append((time.perf_counter() - started) * 1000.0)
                if response.status_code != 200:
                    stats.errors += 1
                    stats.last_error = f"{response.status_code}: {response.text[:200]}"
                    return
                body = response.json()
                stats.ok += 1
                stats.model_versions.add(int(body["model_version"]))
                if truth is not None:
                    due = time.monotonic() + options.label_delay
                    pending_labels.append((due, request_id, truth, body["prediction"]))

        async def send_labels() -> None:
            while not stop.is_set() or pending_labels:
                now = time.monotonic()
                batch = []
                while pending_labels and (pending_labels[0][0] <= now or stop.is_set()):
                    batch.append(pending_labels.popleft())
                if batch:
                    payload = {
                        "labels": [
                            {"request_id": rid, "label": truth} for _, rid, truth, _ in batch
                        ]
                    }
                    try:
                        response = await client.post("/labels", json=payload)
                        if response.status_code == 200:
                            stats.labels_sent += len(batch)
                            stats.correct += sum(
                                label_text(t) == label_text(p) for _, _, t, p in batch
                            )
                    except httpx.HTTPError as exc:
                        stats.last_error = str(exc)
                if stop.is_set() and not pending_labels:
                    return
                await asyncio.sleep(0.25)

        labeller = asyncio.create_task(send_labels())
        tasks: set[asyncio.Task[None]] = set()
        chunk = 0
        drifted = False
        frame = make_rows(500, chunk, drifted)
        position = 0
        next_send = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            if drift_time is not None and not drifted and time.monotonic() >= drift_time:
                drifted = True
                stats.drift_started = stats.elapsed
                stats.drift_sample = stats.sent
                stats.mark("drift", drift_note)
                position = len(frame)  # switch now
            if position >= len(frame):
                chunk += 1
                frame = make_rows(500, chunk, drifted)
                position = 0
            row = frame.iloc[position]
            position += 1
            if feature_names is None:
                feature_names = [c for c in frame.columns if c != target]
            features = {k: _plain(row[k]) for k in feature_names}
            request_id = f"{options.id_prefix}-{options.seed}-{stats.sent:07d}"
            stats.sent += 1
            truth = _plain(row[target]) if target in frame.columns else None
            task = asyncio.create_task(one(request_id, features, truth))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_send += interval
            delay = next_send - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        stop.set()
        await labeller


async def watch_reports(
    base_url: str, stats: DemoStats, stop: asyncio.Event, *, headers: dict[str, str] | None = None
) -> None:
    """Follow the monitor's reports and note when each kind of drift is first detected."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0, headers=headers) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await client.get("/reports/latest")
                if response.status_code == 200:
                    body = response.json()
                    stats.latest_report = body
                    if stats.drift_started is not None:
                        note_detections(stats, body)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def note_detections(stats: DemoStats, body: dict[str, Any]) -> None:
    """Add first detections after the drift began to the timeline."""
    started = stats.drift_started or 0.0
    if (body.get("window") or {}).get("end", 0) < time.time() - (stats.elapsed - started):
        return  # a report from before the drift
    drift = body.get("data_drift") or {}
    flagged = [
        f["feature"] for f in drift.get("features", []) if f["severity"] in ("warning", "critical")
    ]
    if drift.get("severity") in ("warning", "critical"):
        stats.mark("data", f"data drift reported ({drift['severity']}): {', '.join(flagged)}")
    prediction = body.get("prediction_drift") or {}
    if prediction.get("severity") in ("warning", "critical"):
        stats.mark("prediction", f"prediction drift reported ({prediction['severity']})")
    concept = body.get("concept_drift") or {}
    if concept.get("n_drifts", 0) > 0:
        stats.mark("concept", "concept drift confirmed on the labelled error stream")


async def watch_loop(
    base_url: str,
    settings: Settings,
    options: DemoOptions,
    stats: DemoStats,
    stop: asyncio.Event,
) -> None:
    """Follow the closed loop (audit log and rollout) into the timeline; start act two."""
    headers = bearer(settings.read_token, settings.admin_token)
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0, headers=headers) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                response = await client.get(
                    "/audit", params={"kind": ["retrain_triggered", "gate"], "limit": 20}
                )
                if response.status_code == 200:
                    for event in reversed(response.json()["items"]):
                        note_loop_event(stats, event)
                response = await client.get("/rollout")
                if response.status_code == 200:
                    stats.rollout = response.json()
                    note_rollout(stats, stats.rollout)
                    if options.until_story_ends and story_ended(stats, options):
                        stop.set()
                    if (
                        options.second_act
                        and stats.bad_version is None
                        and stats.rollout.get("stage") == "done"
                    ):
                        stats.bad_version = -1  # starting
                        stats.bad_version = await asyncio.to_thread(
                            start_bad_challenger, settings, options
                        )
                        stats.mark(
                            "act2",
                            f"act two: a deliberately bad challenger v{stats.bad_version} "
                            "(trained on inverted labels) goes straight into canary",
                        )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)


def story_ended(stats: DemoStats, options: DemoOptions) -> bool:
    """Whether the closed-loop story is over: act two's challenger withdrawn or rolled back
    (or, without act two, the first rollout finished)."""
    rollout = stats.rollout or {}
    stage = rollout.get("stage")
    if not options.second_act:
        return stage in ("done", "aborted", "rolled_back")
    bad = stats.bad_version
    return (
        bad is not None
        and bad > 0
        and rollout.get("challenger") == bad
        and stage in ("aborted", "rolled_back")
    )


def note_loop_event(stats: DemoStats, event: dict[str, Any]) -> None:
    details = event.get("details") or {}
    if event["kind"] == "retrain_triggered":
        stats.mark(f"retrain-{event['id']}", f"retrain triggered: {event['message']}")
    elif event["kind"] == "gate":
        metrics = details.get("metrics") or {}
        f1_old = (metrics.get("champion") or {}).get("f1_macro")
        f1_new = (metrics.get("challenger") or {}).get("f1_macro")
        data = details.get("data") or {}
        verdict = "passed" if details.get("promote") else "rejected"
        stats.mark(
            f"gate-{event['id']}",
            f"gate {verdict} v{event.get('model_version')}: macro F1 {_num(f1_old)} → "
            f"{_num(f1_new)} on recent data (trained on {data.get('drift_rows', '?')} drifted "
            f"+ {data.get('base_rows', '?')} base rows, snapshot {data.get('data_hash', '?')})",
        )


def note_rollout(stats: DemoStats, rollout: dict[str, Any]) -> None:
    version = rollout.get("challenger")
    for entry in rollout.get("history", []):
        stage = entry["stage"]
        why = "; ".join(entry.get("reasons", []))
        key = f"rollout-{rollout.get('id')}-{stage}"
        text = {
            "shadow": f"v{version} shadows the champion (answers logged, never returned)",
            "canary": f"v{version} answers {rollout.get('canary_share') or 0.5:.0%} of traffic "
            "as canary",
            "watch": f"v{version} promoted to champion; the SLO guard watches it",
            "done": f"rollout of v{version} complete: {why}",
            "aborted": f"v{version} withdrawn: {why}",
            "rolled_back": f"v{version} rolled back by the SLO guard: {why}",
        }.get(stage, f"v{version}: {stage}")
        if stage == "canary" and version == stats.bad_version:
            continue  # act two announces itself
        stats.mark(key, text)


def start_bad_challenger(settings: Settings, options: DemoOptions) -> int:
    """Act two: train a model on inverted labels, register it and put it into canary."""
    frame = generate_loans(5_000, seed=options.seed + 99)
    frame[TARGET] = 1 - frame[TARGET]
    bundle = train_model(frame, TARGET, kind="logreg", seed=options.seed).bundle
    store = open_store(settings.database_url)
    try:
        registry = Registry.from_settings(settings, store)
        version = registry.register(
            bundle, actor="demo", reason="act two: a bad challenger", champion_if_first=False
        )
        start_rollout(store, registry, settings, challenger=version, actor="demo", stage="canary")
    finally:
        store.dispose()
    return version


def bearer(*tokens: SecretStr | None) -> dict[str, str]:
    """The ``Authorization`` header with the first token that is set (none: no header).

    >>> bearer(None, SecretStr("admin-token-0123456789"))
    {'Authorization': 'Bearer admin-token-0123456789'}
    >>> bearer(None, None)
    {}
    """
    for token in tokens:
        if token is not None:
            return {"Authorization": f"Bearer {token.get_secret_value()}"}
    return {}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def summary_table(stats: DemoStats, options: DemoOptions, base_url: str) -> Group:
    table = Table(show_header=False, box=None, padding=(0, 2))
    elapsed = max(stats.elapsed, 1e-9)
    table.add_row("elapsed", f"{elapsed:,.0f}s of {options.duration:,.0f}s")
    table.add_row(
        "requests",
        f"{stats.ok:,} ok · {stats.errors:,} errors · {stats.ok / elapsed:,.1f}/s",
    )
    p50, p95, p99 = (stats.percentile(q) for q in (50, 95, 99))
    if p50 is not None:
        table.add_row("latency", f"p50 {p50:.1f} ms · p95 {p95:.1f} ms · p99 {p99:.1f} ms")
    accuracy = stats.accuracy
    table.add_row(
        "labels",
        f"{stats.labels_sent:,} sent"
        + (f" · accuracy so far {accuracy:.3f}" if accuracy is not None else ""),
    )
    table.add_row("model versions", ", ".join(map(str, sorted(stats.model_versions))) or "-")
    rollout = stats.rollout
    if rollout is not None:
        table.add_row(
            "rollout",
            f"v{rollout.get('champion')} → v{rollout.get('challenger')}: "
            f"[bold]{rollout.get('stage')}[/]"
            + (f" ({rollout['canary_share']:.0%} canary)" if rollout.get("canary_share") else ""),
        )
    if options.drift_at is not None:
        at = options.drift_at * options.duration
        phase = (
            f"[bold red]drifted[/] since {stats.drift_started:.0f}s"
            if stats.drift_started is not None
            else f"baseline (drift at {at:.0f}s)"
        )
        table.add_row("traffic", phase)
    report = stats.latest_report
    if report is not None:
        drift = report.get("data_drift") or {}
        flagged = [
            f["feature"]
            for f in drift.get("features", [])
            if f["severity"] in ("warning", "critical")
        ]
        perf = report.get("performance") or {}
        est = (perf.get("estimated") or {}).get("accuracy")
        real = (perf.get("realized") or {}).get("accuracy")
        table.add_row(
            "latest report",
            f"{_status_markup(report.get('status'))} · data drift {drift.get('severity')}"
            + (f" ({', '.join(flagged)})" if flagged else "")
            + f" · concept {(report.get('concept_drift') or {}).get('state')}",
        )
        table.add_row(
            "accuracy",
            f"estimated {_num(est)} · realized {_num(real)} (last {options.monitor_window:.0f}s)",
        )
    if stats.last_error:
        table.add_row("last error", stats.last_error[:120])
    urls = Table(show_header=False, box=None, padding=(0, 2))
    urls.add_row("live dashboard", f"{base_url}/dashboard")
    urls.add_row("API docs", f"{base_url}/docs")
    urls.add_row("metrics", f"{base_url}/metrics")
    urls.add_row("predictions", f"{base_url}/predictions?limit=20")
    urls.add_row("live events", f"ws://{base_url.removeprefix('http://')}/ws")
    urls.add_row("latest report", f"{base_url}/reports/latest")
    parts: list[Any] = [Panel(table, title="driftline demo", border_style="cyan")]
    if stats.timeline:
        parts.append(Panel(timeline_table(stats), title="timeline", border_style="magenta"))
    parts.append(Panel(urls, title="open", border_style="dim"))
    return Group(*parts)


def timeline_table(stats: DemoStats) -> Table:
    table = Table(box=None, padding=(0, 2))
    for col in ("t", "samples", "after drift", "event"):
        table.add_column(col, justify="right" if col != "event" else "left")
    for t, sent, text in stats.timeline:
        after = "-"
        if (
            stats.drift_started is not None
            and stats.drift_sample is not None
            and t >= stats.drift_started
        ):
            after = f"{t - stats.drift_started:.0f}s / {sent - stats.drift_sample:,} samples"
        table.add_row(f"{t:.0f}s", f"{sent:,}", after, text)
    return table


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _status_markup(status: Any) -> str:
    color = {"ok": "green", "warning": "yellow", "critical": "red"}.get(str(status), "white")
    return f"[{color}]{status}[/]"


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> DemoStats:
    """Run the demo; returns the client-side statistics."""
    if not port_is_free(options.host, options.port):
        raise ConfigurationError(
            f"port {options.port} on {options.host} is busy; pass --port to use another"
        )
    settings = demo_settings(settings, options)
    settings.ensure_home()
    console.rule("[bold]driftline demo")
    train_champion(settings, options, lambda text: console.print(f"• {text}"))
    server = ServerThread(settings, options.host, options.port)
    server.start()
    base_url = f"http://{options.host}:{options.port}"
    console.print(f"• API listening on {base_url}")
    console.print(f"• live dashboard: {base_url}/dashboard")
    stats = DemoStats()
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # First Ctrl-C: stop sending, flush the labels still due, shut the API down.
            loop.add_signal_handler(signal.SIGINT, stop.set)
        # Tokens set in the environment hold for the demo's own server too.
        labels = bearer(settings.labels_token, settings.admin_token)
        read = bearer(settings.read_token, settings.admin_token)
        traffic = asyncio.create_task(drive_traffic(base_url, options, stats, stop, headers=labels))
        watcher = asyncio.create_task(watch_reports(base_url, stats, stop, headers=read))
        looper = asyncio.create_task(watch_loop(base_url, settings, options, stats, stop))
        with Live(
            summary_table(stats, options, base_url), console=console, refresh_per_second=4
        ) as live:
            while not traffic.done():
                live.update(summary_table(stats, options, base_url))
                await asyncio.sleep(0.25)
            live.update(summary_table(stats, options, base_url))
        await traffic
        stop.set()
        await watcher
        await looper

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        console.print("[yellow]stopping (Ctrl-C)…")
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    accuracy = f", accuracy {stats.accuracy:.3f}" if stats.accuracy is not None else ""
    console.print(
        f"[green]done[/]: {stats.ok:,} predictions, {stats.labels_sent:,} labels{accuracy}"
    )
    if stats.timeline:
        console.print(Panel(timeline_table(stats), title="what happened", border_style="magenta"))
    return stats
