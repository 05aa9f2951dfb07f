"""Rows and accessors shared by the profile tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from driftline.profiles import CategoricalProfile, DatasetProfile, NumericProfile


def sample_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 2.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "z": np.where(rng.random(n) < 0.7, 0.0, rng.exponential(3.0, n)),
            "k": rng.poisson(3.0, n).astype(float),
            "flag": rng.random(n) < 0.3,
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.15, 0.05]),
        }
    )


def numeric_of(profile: DatasetProfile, name: str) -> NumericProfile:
    p = profile.features[name]
    assert isinstance(p, NumericProfile)
    return p


def categorical_of(profile: DatasetProfile, name: str) -> CategoricalProfile:
    p = profile.features[name]
    assert isinstance(p, CategoricalProfile)
    return p


def window_of(reference: DatasetProfile, frame: pd.DataFrame, seed: int) -> DatasetProfile:
    window = reference.empty_like(seed=seed)
    window.add_frame(frame)
    return window


def stored_numbers(value: object) -> object:
    """A stored array (hex-encoded float64 in profile format 2) as numbers."""
    if isinstance(value, str):
        return np.frombuffer(bytes.fromhex(value), dtype="<f8")
    return value


def assert_same(a: DatasetProfile, b: DatasetProfile) -> None:
    """Equal counts, samples and tallies; floating summaries equal up to rounding."""
    da, db = a.to_dict(), b.to_dict()
    assert da["n_rows"] == db["n_rows"]
    for name, fa in da["features"].items():
        fb = db["features"][name]
        for key, value in fa.items():
            if key in ("sums", "mean", "m2"):
                np.testing.assert_allclose(
                    stored_numbers(value), stored_numbers(fb[key]), rtol=1e-9, atol=1e-6
                )
            else:
                assert value == fb[key], (name, key)


def as_format_1(data: dict[str, object]) -> dict[str, object]:
    """The same profile dict with every hex-encoded array as a JSON list (profile format 1)."""
    out = json.loads(json.dumps(data))
    out["format"] = 1
    for spec in out["features"].values():
        for key in ("edges", "counts", "sums", "sample", "sample_keys"):
            if isinstance(spec.get(key), str):
                dtype = "<i8" if key == "counts" else "<f8"
                spec[key] = np.frombuffer(bytes.fromhex(spec[key]), dtype=dtype).tolist()
    return out
