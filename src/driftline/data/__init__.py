"""Loading tables, a synthetic loan-applications domain, and drift injection."""

from __future__ import annotations

from driftline.data.inject import DRIFT_KINDS, inject_drift
from driftline.data.io import read_table, write_table
from driftline.data.synthetic import TARGET, generate_loans, label_loans

__all__ = [
    "DRIFT_KINDS",
    "TARGET",
    "generate_loans",
    "inject_drift",
    "label_loans",
    "read_table",
    "write_table",
]
