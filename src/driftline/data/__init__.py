"""Loading tables, a synthetic loan-applications domain, and drift injection.

The names below load on first use (PEP 562): the CLI reads :mod:`driftline.data.constants` at
start-up, and importing this package must not pull pandas in with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "DRIFT_KINDS": "driftline.data.constants",
    "inject_drift": "driftline.data.inject",
    "read_table": "driftline.data.io",
    "write_table": "driftline.data.io",
    "TARGET": "driftline.data.synthetic",
    "generate_loans": "driftline.data.synthetic",
    "label_loans": "driftline.data.synthetic",
}


def __getattr__(name: str) -> Any:
    """Load a public name on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
