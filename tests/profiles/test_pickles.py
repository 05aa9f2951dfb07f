"""Profiles pickled while the profiles were one module (``driftline/profiles.py``) still load.

Pickle names a class by ``module.qualname``; those pickles say ``driftline.profiles.<Class>``
(and ``driftline.profiles._NumericState`` for a profile with rows still in its stacked arrays).
The fixture was written by :func:`_profiles` on commit 0a5f188, before the split; loaded now, it
must equal the same profiles built now, and keep counting alike.
"""

from __future__ import annotations

import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.profiles import DatasetProfile, build_reference_profile
from driftline.schema import infer_schema

FIXTURE = Path(__file__).with_name("profiles_before_split.pickle")


def _profiles() -> dict[str, Any]:
    """What the fixture holds (``pickle.dumps(_profiles(), protocol=4)`` made it)."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=200),
            "n": rng.poisson(2.0, 200).astype(float),
            "c": rng.choice(["a", "b", "c"], size=200),
        }
    )
    reference = build_reference_profile(
        frame, infer_schema(frame, None), bins=4, sample_size=8, seed=3
    )
    window = reference.empty_like(seed=5)
    window.add_frame(frame.iloc[:50])
    _ = window.features  # brought up to date: no stacked arrays left
    pending = reference.empty_like(seed=6)
    pending.add_columns(
        {
            "x": np.array([0.1, 9.0]),
            "n": np.array([1.0, np.nan]),
            "c": np.array(["a", "z"], dtype=object),
        }
    )
    return {
        "reference": reference,
        "window": window,
        "pending": pending,
        "numeric": window.features["x"],
        "categorical": window.features["c"],
    }


def _more_rows() -> dict[str, Any]:
    return {
        "x": np.array([-3.0, 0.2, 0.3]),
        "n": np.array([4.0, 2.0, 0.0]),
        "c": np.array(["b", "y", None], dtype=object),
    }


def test_the_fixture_names_the_classes_by_their_old_module_path() -> None:
    strings = {a for _, a, _ in pickletools.genops(FIXTURE.read_bytes()) if isinstance(a, str)}
    assert "driftline.profiles" in strings
    assert {"DatasetProfile", "NumericProfile", "CategoricalProfile", "_NumericState"} <= strings
    assert not [s for s in strings if s.startswith("driftline.profiles.")]


def test_profiles_pickled_before_the_split_load_as_they_were() -> None:
    old = pickle.loads(FIXTURE.read_bytes())  # a fixture of this repository
    new = _profiles()
    assert old["pending"]._state is not None  # rows still in the stacked arrays
    assert old.keys() == new.keys()
    for name, profile in new.items():
        assert type(old[name]) is type(profile)
        assert old[name].to_dict() == profile.to_dict(), name
    for name in ("window", "pending"):  # the reservoir generator's state came back too
        old[name].add_columns(_more_rows())
        new[name].add_columns(_more_rows())
        assert old[name] == new[name]


def test_profiles_pickled_now_round_trip() -> None:
    for profile in _profiles().values():
        again = pickle.loads(pickle.dumps(profile))
        assert again.to_dict() == profile.to_dict()
        if isinstance(profile, DatasetProfile):
            assert again == profile
