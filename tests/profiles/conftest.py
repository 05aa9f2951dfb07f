"""The reference profile most profile tests count against."""

from __future__ import annotations

import pytest

from driftline.profiles import DatasetProfile, build_reference_profile
from driftline.schema import infer_schema
from tests.profiles.profiletools import sample_frame


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    frame = sample_frame(5000)
    return build_reference_profile(frame, infer_schema(frame, None), sample_size=100)
