from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import DataError, ValidationError
from driftline.schema import FeatureSchema, infer_schema, label_text


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 41, 25, 60],
            "income": [1.5, np.nan, 3.0, 2.0],
            "city": ["a", "b", "a", None],
            "vip": [True, False, False, True],
            "y": ["no", "yes", "no", "maybe"],
        }
    )


def test_infer_kinds_ranges_categories_and_nullability(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, target="y")
    assert schema.names == ("age", "income", "city", "vip")
    age, income, city, vip = schema.features
    assert (age.kind, age.integer, age.minimum, age.maximum, age.nullable) == (
        "numeric",
        True,
        25.0,
        60.0,
        False,
    )
    assert income.nullable and not income.integer
    assert city.kind == "categorical" and city.categories == ("a", "b") and city.nullable
    assert vip.kind == "boolean"
    assert schema.classes == ("maybe", "no", "yes")
    assert schema.task == "multiclass"


def test_binary_task_and_class_order_follow_numeric_sort() -> None:
    frame = pd.DataFrame({"x": range(12), "y": [2, 10, 1] * 4})
    schema = infer_schema(frame, target="y")
    assert schema.classes == (1, 2, 10)  # numeric, not string, order
    binary = infer_schema(pd.DataFrame({"x": range(4), "y": [0, 1, 0, 1]}), target="y")
    assert binary.task == "binary"


def test_infer_errors_are_clear() -> None:
    with pytest.raises(DataError, match="target column 'nope' not in data"):
        infer_schema(pd.DataFrame({"x": [1]}), target="nope")
    with pytest.raises(DataError, match="single class"):
        infer_schema(pd.DataFrame({"x": [1, 2], "y": [1, 1]}), target="y")


def test_every_bad_field_is_named(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, target="y")
    with pytest.raises(ValidationError) as info:
        schema.validate_record(
            {"age": "old", "income": math.inf, "vip": 1, "zip": "x"}, loc=("body", "features")
        )
    found = {(".".join(map(str, e["loc"])), e["type"]) for e in info.value.errors}
    assert found == {
        ("body.features.zip", "unknown_feature"),
        ("body.features.age", "type_error.number"),
        ("body.features.income", "not_finite"),
        ("body.features.vip", "type_error.bool"),
    }
    # city is nullable, so leaving it out is fine; age is not.
    with pytest.raises(ValidationError) as info:
        schema.validate_record({"income": 1.0, "city": "a", "vip": True})
    assert [e["loc"] for e in info.value.errors] == [["features", "age"]]
    assert info.value.errors[0]["type"] == "missing"


def test_null_only_where_training_had_missing_values(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, target="y")
    ok = schema.validate_record({"age": 1, "income": None, "city": None, "vip": False})
    assert ok["income"] is None
    with pytest.raises(ValidationError, match=r"features\.age"):
        schema.validate_record({"age": None, "income": 1.0, "city": "a", "vip": False})
    relaxed = infer_schema(frame, target="y", allow_missing=True)
    assert relaxed.validate_record({"age": None, "vip": None})["age"] is None


def test_list_form_in_schema_order(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, target="y")
    assert schema.validate_record([1, 2.0, "c", True]) == {
        "age": 1.0,
        "income": 2.0,
        "city": "c",
        "vip": True,
    }
    with pytest.raises(ValidationError, match="expected 4 values"):
        schema.validate_record([1, 2.0])
    with pytest.raises(ValidationError, match="object keyed by feature name"):
        schema.validate_record("age=1")


def test_json_round_trip_and_compatibility(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, target="y")
    again = FeatureSchema.from_json(schema.to_json())
    assert again == schema
    assert schema.compatible_with(again) == []
    other = infer_schema(frame.drop(columns=["vip"]), target="y")
    assert "feature names differ" in schema.compatible_with(other)[0]


def test_coerce_frame_reports_missing_columns(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, target="y")
    with pytest.raises(DataError, match=r"lacks feature column\(s\) \['vip'\]"):
        schema.coerce_frame(frame.drop(columns=["vip"]))


def test_label_text_is_canonical() -> None:
    assert label_text(1.0) == label_text(1) == label_text(np.int64(1)) == "1"
    assert label_text(1.5) == "1.5"


@settings(max_examples=60, deadline=None)
@given(
    age=st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False),
    # Any text a store can hold: no control characters (Cc), no lone surrogates (Cs).
    city=st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=20),
    vip=st.booleans(),
)
def test_valid_values_always_pass(age: float, city: str, vip: bool) -> None:
    schema = infer_schema(
        pd.DataFrame({"age": [1.0, 2.0], "city": ["a", "b"], "vip": [True, False], "y": [0, 1]}),
        target="y",
    )
    clean = schema.validate_record({"age": age, "city": city, "vip": vip})
    assert clean == {"age": float(age), "city": city, "vip": vip}
    frame = schema.to_frame([clean])
    assert list(frame.columns) == ["age", "city", "vip"]


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.text(max_size=5),
    bad=st.characters(categories=("Cc", "Cs")),
    suffix=st.text(max_size=5),
)
def test_a_category_no_store_can_hold_is_refused(prefix: str, bad: str, suffix: str) -> None:
    """A control character or a lone surrogate anywhere in a category: PostgreSQL refuses NUL
    and cannot encode a surrogate, so the edge refuses them all (API and stream consumer)."""
    schema = infer_schema(
        pd.DataFrame({"age": [1.0, 2.0], "city": ["a", "b"], "y": [0, 1]}), target="y"
    )
    _, errors = schema.check_record({"age": 1, "city": prefix + bad + suffix}, ("features",))
    assert [e["loc"] for e in errors] == [["features", "city"]]


def test_an_integer_beyond_a_double_is_refused_not_raised() -> None:
    schema = infer_schema(pd.DataFrame({"age": [1.0, 2.0], "y": [0, 1]}), target="y")
    _, errors = schema.check_record({"age": 10**400}, ("features",))
    assert [(e["loc"], e["type"]) for e in errors] == [(["features", "age"], "not_finite")]
    assert schema.validate_record({"age": 10**300}) == {"age": 1e300}
