from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.data import TARGET, generate_loans, inject_drift
from driftline.errors import DataError
from driftline.models import ModelBundle, SklearnModel
from driftline.models.evaluation import classification_metrics
from driftline.training import PROBA_PREFIX, train_model

METRICS = {
    "accuracy",
    "f1_macro",
    "cohen_kappa",
    "roc_auc",
    "log_loss",
    "brier",
    "confusion_matrix",
}


@pytest.mark.parametrize("kind", ["logreg", "rf", "hgb"])
def test_binary_training_reports_all_metrics(kind: str) -> None:
    frame = generate_loans(1_500, seed=3)
    result = train_model(frame, TARGET, kind=kind, reference_size=500)
    metrics = result.metrics
    assert set(metrics) >= METRICS
    assert 0.6 < metrics["accuracy"] <= 1.0
    assert metrics["roc_auc"] > 0.7
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"] == 375
    bundle = result.bundle
    assert len(bundle.reference) == 500
    assert bundle.reference[TARGET].mean() == pytest.approx(frame[TARGET].mean(), abs=0.03)
    assert {f"{PROBA_PREFIX}0", f"{PROBA_PREFIX}1", TARGET} <= set(bundle.evaluation.columns)
    assert bundle.meta["data_hash"] and bundle.schema.task == "binary"


def test_multiclass_training() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 3))
    y = np.array(["low", "mid", "high"])[np.digitize(x[:, 0] + 0.3 * x[:, 1], [-0.5, 0.5])]
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(kind=rng.choice(["p", "q"], 900), y=y)
    result = train_model(frame, "y", kind="hgb")
    assert result.bundle.schema.task == "multiclass"
    assert result.metrics["classes"] == ["high", "low", "mid"]
    assert np.array(result.metrics["confusion_matrix"]).shape == (3, 3)
    assert result.metrics["accuracy"] > 0.8


def test_too_few_rows_per_class_is_a_clear_error() -> None:
    frame = pd.DataFrame({"x": range(20), "y": [0] * 18 + [1] * 2})
    with pytest.raises(DataError, match="at least 5 rows"):
        train_model(frame, "y")


def test_bundle_round_trip(tmp_path: object, trained_bundle: ModelBundle) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    folder = trained_bundle.save(tmp_path / "b")
    again = ModelBundle.load(folder, version=3)
    rows = generate_loans(50, seed=5)
    assert np.allclose(again.predict_frame(rows).proba, trained_bundle.predict_frame(rows).proba)
    assert again.schema == trained_bundle.schema and again.version == 3


def test_metrics_match_sklearn_golden_values() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p1 = np.clip(y * 0.6 + rng.uniform(0, 0.4, 400), 0, 1)
    proba = np.column_stack([1 - p1, p1])
    m = classification_metrics(y, proba, [0, 1])
    pred = (p1 >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p1))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(proba, 1e-15, 1)))
    assert m["precision_macro"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    report = skm.classification_report(y, pred, output_dict=True)
    for row in m["per_class"]:
        golden = report[str(row["class"])]
        assert row["precision"] == pytest.approx(golden["precision"])
        assert row["recall"] == pytest.approx(golden["recall"])
        assert row["f1"] == pytest.approx(golden["f1-score"])
        assert row["support"] == golden["support"]


def test_per_class_metrics_of_a_class_never_predicted_are_zero_not_an_error() -> None:
    proba = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.6, 0.3, 0.1]])
    m = classification_metrics(["a", "b", "b", "c"], proba, ["a", "b", "c"])
    by_class = {row["class"]: row for row in m["per_class"]}
    assert by_class["c"] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert by_class["a"]["recall"] == 1.0
    assert by_class["a"]["precision"] == pytest.approx(1 / 3)


# --- the compiled preprocessing path -------------------------------------------------------


@pytest.fixture(scope="module", params=["logreg", "rf", "hgb"])
def fitted(request: pytest.FixtureRequest) -> ModelBundle:
    frame = generate_loans(2_000, seed=4)
    return train_model(frame, TARGET, kind=request.param, allow_missing=True).bundle


def _records(frame: pd.DataFrame, names: tuple[str, ...]) -> list[dict[str, object]]:
    out = []
    for row in frame.to_dict("records"):
        out.append(
            {n: None if isinstance(row[n], float) and np.isnan(row[n]) else row[n] for n in names}
        )
    return out


def test_compiled_path_equals_the_pipeline(fitted: ModelBundle) -> None:
    model = fitted.model
    assert isinstance(model, SklearnModel) and model.compiled
    frame = generate_loans(800, seed=9)
    frame = inject_drift(frame, "new_category", feature="purpose", strength=0.2, seed=1)
    frame = inject_drift(frame, "missing_rate", feature="home_ownership", strength=0.2, seed=2)
    frame = inject_drift(frame, "missing_rate", feature="income", strength=0.2, seed=3)
    records = _records(frame, fitted.schema.names)
    fast = model.predict_proba_records(records)
    slow = model.predict_proba(fitted.schema.to_frame(records))
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_forest_fast_path_equals_scikit_learn_bit_for_bit(fitted: ModelBundle) -> None:
    model = fitted.model
    assert isinstance(model, SklearnModel)
    forest = model.pipeline.named_steps["model"]
    records = _records(generate_loans(300, seed=11), fitted.schema.names)
    features = model._compiled.transform_records(records)  # type: ignore[union-attr]
    if fitted.kind != "rf":
        assert model._forest is None
        return
    assert model._forest is not None
    for rows in (records[:1], records[:7], records):
        fast = model.predict_proba_records(rows)
        assert model._forest is not None and model._forest.verified
        assert np.array_equal(fast, forest.predict_proba(model._compiled.transform_records(rows)))
    assert np.array_equal(model.predict_proba_records(records), forest.predict_proba(features))
    # a pickled model rebuilds the fast path and verifies it again
    again = pickle.loads(pickle.dumps(model))
    assert again._forest is not None and not again._forest.verified
    assert np.array_equal(again.predict_proba_records(records), forest.predict_proba(features))


def test_forest_fast_path_is_dropped_when_it_disagrees() -> None:
    from driftline.models.sklearn import ForestPredictor

    frame = generate_loans(600, seed=3)
    bundle = train_model(frame, TARGET, kind="rf", allow_missing=True).bundle
    model = bundle.model
    assert isinstance(model, SklearnModel) and model._forest is not None
    forest = model.pipeline.named_steps["model"]

    class Skewed(ForestPredictor):
        def _sum(self, features: np.ndarray) -> np.ndarray:
            return super()._sum(features) + 1e-9

    model._forest = Skewed(forest)
    records = _records(generate_loans(50, seed=5), bundle.schema.names)
    expected = forest.predict_proba(model._compiled.transform_records(records))  # type: ignore[union-attr]
    assert np.array_equal(model.predict_proba_records(records), expected)
    assert model._forest is None  # never tried again


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_compiled_path_equals_pipeline_on_arbitrary_rows(data: st.DataObject) -> None:
    frame = generate_loans(600, seed=2)
    bundle = _small_bundle()
    names = bundle.schema.names
    record: dict[str, object] = {}
    for spec in bundle.schema.features:
        if spec.kind == "categorical":
            record[spec.name] = data.draw(
                st.none() | st.sampled_from([*spec.categories, "never-seen"])
            )
        elif spec.kind == "boolean":
            record[spec.name] = data.draw(st.none() | st.booleans())
        else:
            record[spec.name] = data.draw(
                st.none() | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
            )
    assert set(record) == set(names) and len(frame)
    model = bundle.model
    assert isinstance(model, SklearnModel)
    np.testing.assert_allclose(
        model.predict_proba_records([record]),
        model.predict_proba(bundle.schema.to_frame([record])),
        rtol=0,
        atol=1e-12,
    )


_SMALL: list[ModelBundle] = []


def _small_bundle() -> ModelBundle:
    if not _SMALL:
        frame = generate_loans(600, seed=2)
        _SMALL.append(train_model(frame, TARGET, kind="logreg", allow_missing=True).bundle)
    return _SMALL[0]
