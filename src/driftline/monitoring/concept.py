"""Concept drift as labels arrive: the champion's error stream through
:class:`~driftline.drift.concept_monitor.ConceptDriftMonitor`, with its state in the store.

Every few seconds the leading worker reads the labels that arrived since its cursor (joined to
their predictions, in label-arrival order), feeds the champion's error bits to the detector,
and writes the detector's checkpoint, the cursor and any confirmed drift back to the store in
one transaction — so a restart, or another worker taking the lead, continues exactly where it
stopped. A confirmed drift is written to the audit log and sets the drift *anchor*: the
prediction time of the sample half a trend buffer before the confirming one (where the change
most likely began), from which production samples are taken to retrain (see
:mod:`driftline.loop`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from driftline.drift.concept_monitor import ConceptDriftMonitor
from driftline.errors import DataError
from driftline.schema import label_text
from driftline.store import Store, queries

__all__ = ["ConceptUpdate", "concept_status", "state_key", "update_concept"]

#: How many (sample index, prediction time) marks are kept to place the anchor.
_MARKS = 64


def state_key(model_name: str) -> str:
    return f"concept:{model_name}"


@dataclass(frozen=True)
class ConceptUpdate:
    new_samples: int
    drifts: tuple[dict[str, Any], ...]
    state: str
    version: int


def _fresh(version: int) -> dict[str, Any]:
    return {
        "version": version,
        "monitor": ConceptDriftMonitor().to_dict(),
        "marks": [],
        "events": [],
        "anchor_ts": None,
    }


def _anchor(marks: list[list[float]], index: int, lookback: int) -> float | None:
    """Prediction time of the sample ``lookback`` before ``index`` (from the sparse marks)."""
    target = index - lookback
    best: float | None = None
    for mark_index, ts in marks:
        if mark_index <= target:
            best = ts
    if best is None and marks:
        best = marks[0][1]
    return best


def update_concept(
    store: Store,
    model_name: str,
    champion_version: int,
    *,
    max_rows: int = 20_000,
) -> ConceptUpdate:
    """Feed the labels that arrived since the last call; persist the detector state."""
    key = state_key(model_name)
    with store.sessions() as session:
        state = queries.get_state(key, session=session) or {}
    cursor = state.get("cursor", [0.0, ""])
    if state.get("version") != champion_version or "monitor" not in state:
        kept_anchor = state.get("anchor_ts")
        state = {**_fresh(champion_version), "cursor": cursor, "anchor_ts": kept_anchor}
    try:
        monitor = ConceptDriftMonitor.from_dict(state["monitor"])
    except DataError:  # a checkpoint from another river version: start afresh
        monitor = ConceptDriftMonitor()
    with store.sessions() as session:
        rows = queries.labels_since(
            session=session, after_ts=float(cursor[0]), after_id=str(cursor[1]), limit=max_rows
        )
    champion_rows = [
        r for r in rows if r["model_version"] == champion_version and r["variant"] == "champion"
    ]
    marks: list[list[float]] = state.get("marks", [])
    drifts: list[dict[str, Any]] = []
    for row in champion_rows:
        error = label_text(row["label"]) != label_text(row["prediction"])
        index = monitor.n_seen
        if index % 50 == 0:
            marks.append([index, float(row["ts"])])
            marks = marks[-_MARKS:]
        monitor.update_error(int(error))
        if monitor.drift_detected:
            status = monitor.status()
            lookback = monitor.buffer_size // 2
            anchor = _anchor(marks, index, lookback)
            drifts.append(
                {
                    "sample_index": index,
                    "label_ts": float(row["label_ts"]),
                    "anchor_ts": anchor,
                    "error_rate": status.error_rate,
                    "n_drifts": status.n_drifts,
                }
            )
            if state.get("anchor_ts") is None:
                state["anchor_ts"] = anchor
    if rows:
        last = rows[-1]
        state["cursor"] = [float(last["label_ts"]), str(last["request_id"])]
    state["monitor"] = monitor.to_dict()
    state["marks"] = marks
    state["events"] = (state.get("events", []) + drifts)[-20:]
    state["updated_ts"] = time.time()
    with store.sessions.begin() as session:
        queries.put_state(key, state, session=session)
        for drift in drifts:
            queries.add_audit(
                session=session,
                kind="concept_drift",
                actor="monitor",
                model_version=champion_version,
                message=(
                    f"concept drift confirmed at labelled sample {drift['sample_index']} "
                    f"(recent error rate {drift['error_rate'] or 0:.3f})"
                ),
                details=drift,
            )
    return ConceptUpdate(
        new_samples=len(champion_rows),
        drifts=tuple(drifts),
        state=monitor.state,
        version=champion_version,
    )


def concept_status(store: Store, model_name: str, version: int) -> dict[str, Any]:
    """The concept-drift part of a report, from the stored detector state."""
    with store.sessions() as session:
        state = queries.get_state(state_key(model_name), session=session)
    if not state or state.get("version") != version:
        return {"state": "stable", "n_seen": 0, "n_drifts": 0, "anchor_ts": None, "events": []}
    try:
        monitor = ConceptDriftMonitor.from_dict(state["monitor"])
    except DataError:
        return {"state": "unknown", "n_seen": 0, "n_drifts": 0, "anchor_ts": None, "events": []}
    status = monitor.status()
    realized = status.realized
    return {
        "state": status.state,
        "n_seen": status.n_seen,
        "n_drifts": status.n_drifts,
        "n_warnings": status.n_warnings,
        "n_rejected": status.n_rejected,
        "n_improvements": status.n_improvements,
        "last_drift_index": status.last_drift_index,
        "error_rate": status.error_rate,
        "realized": None
        if realized is None
        else {
            "accuracy": realized.accuracy,
            "f1_macro": realized.f1_macro,
            "cohen_kappa": realized.cohen_kappa,
            "n": realized.n,
        },
        "anchor_ts": state.get("anchor_ts"),
        "events": state.get("events", []),
    }


def clear_anchor(store: Store, model_name: str) -> None:
    """Forget the drift anchor (after a retrain used it)."""
    key = state_key(model_name)
    with store.sessions.begin() as session:
        state = queries.get_state(key, session=session)
        if state is not None:
            state["anchor_ts"] = None
            queries.put_state(key, state, session=session)
