"""Monitoring: reference profiles saved with each version, live window buckets, the monitor
job (drift, quality, performance, concept drift) and its reports."""

from __future__ import annotations

from driftline.monitoring.concept import ConceptUpdate, concept_status, update_concept
from driftline.monitoring.monitor import MonitorOptions, jsonable, run_monitor, window_summary
from driftline.monitoring.reference import MonitoringReference, attach_reference, reference_for
from driftline.monitoring.window import WindowRecorder, WindowSummary, summarize

__all__ = [
    "ConceptUpdate",
    "MonitorOptions",
    "MonitoringReference",
    "WindowRecorder",
    "WindowSummary",
    "attach_reference",
    "concept_status",
    "jsonable",
    "reference_for",
    "run_monitor",
    "summarize",
    "update_concept",
    "window_summary",
]
