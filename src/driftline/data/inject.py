"""Drift injection: seven ways to make live data differ from the reference.

Each function returns a new frame and leaves its input alone. They are used by tests, the
benchmarks and ``driftline demo``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from driftline.data.constants import DRIFT_KINDS, DriftKind
from driftline.errors import ConfigurationError

__all__ = ["DRIFT_KINDS", "DriftKind", "inject_drift"]


def inject_drift(
    frame: pd.DataFrame,
    kind: str,
    *,
    feature: str | None = None,
    strength: float = 1.0,
    seed: int = 0,
    relabel: Callable[[pd.DataFrame, np.random.Generator], np.ndarray] | None = None,
    target: str | None = None,
) -> pd.DataFrame:
    """Return a copy of ``frame`` with one kind of drift injected.

    Parameters
    ----------
    frame
        Rows to alter.
    kind
        ``mean_shift`` (add ``strength`` standard deviations), ``variance_change`` (scale the
        spread around the mean by ``1 + strength``), ``new_category`` (a share ``strength`` of
        rows take a category never seen), ``category_mix`` (move a share ``strength`` of rows
        to the rarest category), ``missing_rate`` (a share ``strength`` of values become
        missing), ``outliers`` (a share ``strength`` of values are pushed 10 SD out),
        ``concept`` (labels redrawn by ``relabel``: features unchanged, the rule changes).
    feature
        The column to alter (not used by ``concept``).
    strength
        How strong, in the unit of the kind (see above).
    seed
        Seed of the random choices.
    relabel, target
        For ``concept``: a function drawing new labels, and the label column.

    Example
    -------
    >>> df = pd.DataFrame({"x": np.arange(10.0), "c": list("aabbaabbaa")})
    >>> inject_drift(df, "mean_shift", feature="x", strength=1.0)["x"].mean().round(2)
    np.float64(7.37)
    >>> sorted(inject_drift(df, "new_category", feature="c", strength=0.5)["c"].unique())
    ['__new__', 'a', 'b']
    """
    if kind not in DRIFT_KINDS:
        raise ConfigurationError(f"drift kind must be one of {DRIFT_KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    if kind == "concept":
        if relabel is None or target is None:
            raise ConfigurationError("concept drift needs relabel= and target=")
        out[target] = relabel(out, rng)
        return out
    if feature is None or feature not in out.columns:
        raise ConfigurationError(f"feature must name a column of the frame, got {feature!r}")
    column = out[feature]
    share = min(max(strength, 0.0), 1.0)
    chosen = rng.random(n) < share
    if kind in ("mean_shift", "variance_change", "outliers"):
        values = column.to_numpy(dtype=float).copy()
        sd = float(np.nanstd(values)) or 1.0
        mean = float(np.nanmean(values))
        if kind == "mean_shift":
            values = values + strength * sd
        elif kind == "variance_change":
            values = mean + (values - mean) * (1.0 + strength)
        else:
            signs = rng.choice([-1.0, 1.0], size=n)
            values = np.where(chosen, mean + signs * 10.0 * sd, values)
        out[feature] = values
    elif kind == "missing_rate":
        out[feature] = column.astype(object).where(~chosen, None)
        if column.dtype != object:
            out[feature] = pd.to_numeric(out[feature], errors="coerce")
    elif kind == "new_category":
        out[feature] = column.astype(object).where(~chosen, "__new__")
    else:  # category_mix
        rarest = column.value_counts().idxmin()
        out[feature] = column.astype(object).where(~chosen, rarest)
    return out
