"""Profiles written down and read back: exact round trips, format 1, corrupt arrays."""

from __future__ import annotations

import json

import pytest

from driftline.errors import DataError
from driftline.profiles import DatasetProfile
from tests.profiles.profiletools import as_format_1, numeric_of, sample_frame, window_of


def test_dict_round_trip_is_exact_and_json_safe(reference: DatasetProfile) -> None:
    window = window_of(reference, sample_frame(300, seed=3), 9)
    for profile in (reference, window, reference.empty_like(seed=0)):
        text = json.dumps(profile.to_dict(), allow_nan=False)
        back = DatasetProfile.from_dict(json.loads(text))
        assert back == profile
        assert back.to_dict() == profile.to_dict()
    with pytest.raises(DataError, match="format"):
        DatasetProfile.from_dict({"format": 99})


def test_format_1_profiles_are_still_read(reference: DatasetProfile) -> None:
    window = window_of(reference, sample_frame(300, seed=3), 9)
    for profile in (reference, window):
        old = as_format_1(profile.to_dict())
        assert old["features"]["x"]["counts"] == numeric_of(profile, "x").counts.tolist()
        assert DatasetProfile.from_dict(old) == profile


def test_corrupt_stored_arrays_are_refused(reference: DatasetProfile) -> None:
    data = json.loads(json.dumps(reference.to_dict()))
    bad = json.loads(json.dumps(data))
    bad["features"]["x"]["sample"] = "zz"
    with pytest.raises(DataError, match="sample is not hex-encoded"):
        DatasetProfile.from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["features"]["x"]["sums"] = bad["features"]["x"]["sums"][:-2]
    with pytest.raises(DataError, match="sums holds"):
        DatasetProfile.from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["features"]["x"]["sample_keys"] = bad["features"]["x"]["sample_keys"][:-16]
    with pytest.raises(DataError, match="sample and sample_keys"):
        DatasetProfile.from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["features"]["c"]["counts"] = bad["features"]["c"]["counts"][:-16]
    with pytest.raises(DataError, match="len\\(categories\\) \\+ 1"):
        DatasetProfile.from_dict(bad)
