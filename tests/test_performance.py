"""Realized metrics against scikit-learn, the sketch's algebra, and CBPE on known models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from driftline.errors import ConfigurationError, DataError
from driftline.performance import (
    Calibrator,
    ImportanceWeightedAccuracy,
    PerformanceEstimate,
    PerformanceSketch,
    compare,
    confusion_matrix,
    estimate,
    realized_metrics,
)


def labelled(seed: int, n: int, k: int, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    wrong = rng.random(n) > accuracy
    return y, np.where(wrong, rng.integers(0, k, n), y)


def calibrated_model(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from a softmax model and labels drawn from exactly those probabilities."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (n, k))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    y = (proba.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return y, proba


# --- realized metrics: golden values against scikit-learn ------------------------------------


@pytest.mark.parametrize(("seed", "k"), [(0, 2), (1, 3), (2, 7)])
def test_realized_metrics_match_sklearn(seed: int, k: int) -> None:
    y, pred = labelled(seed, 500, k, accuracy=0.6)
    m = realized_metrics(y, pred)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert m.f1_macro == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m.cohen_kappa == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert m.n == 500 and m.roc_auc is None


def test_realized_metrics_with_string_labels_and_a_class_never_predicted() -> None:
    y = np.array(["cat", "dog", "eel", "dog", "cat", "eel", "eel"])
    pred = np.array(["cat", "dog", "dog", "dog", "dog", "cat", "dog"])
    m = realized_metrics(y, pred)
    assert m.f1_macro == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m.cohen_kappa == pytest.approx(skm.cohen_kappa_score(y, pred))
    matrix, labels = confusion_matrix(y, pred, labels=["eel", "dog", "cat"])
    assert labels == ("eel", "dog", "cat")
    assert matrix.tolist() == skm.confusion_matrix(y, pred, labels=["eel", "dog", "cat"]).tolist()


def test_confusion_matrices_add_up_over_disjoint_rows() -> None:
    y, pred = labelled(3, 300, 4, accuracy=0.5)
    whole, _ = confusion_matrix(y, pred, labels=range(4))
    first, _ = confusion_matrix(y[:100], pred[:100], labels=range(4))
    rest, _ = confusion_matrix(y[100:], pred[100:], labels=range(4))
    assert np.array_equal(whole, first + rest)


def test_kappa_is_nan_when_undefined_and_bad_input_is_refused() -> None:
    assert math.isnan(realized_metrics([1, 1, 1], [1, 1, 1]).cohen_kappa)
    with pytest.raises(DataError, match="not among"):
        confusion_matrix([0, 1, 2], [0, 1, 1], labels=[0, 1])
    with pytest.raises(DataError, match="3 labels but y_pred has 2"):
        confusion_matrix([0, 1, 2], [0, 1])
    with pytest.raises(DataError, match="no rows"):
        realized_metrics([], [])


@pytest.mark.parametrize(("seed", "k"), [(0, 2), (1, 4)])
def test_realized_roc_auc_matches_sklearn_including_ties(seed: int, k: int) -> None:
    y, proba = calibrated_model(seed, 400, k)
    proba = np.round(proba, 1)  # plenty of ties
    proba /= proba.sum(axis=1, keepdims=True)
    m = realized_metrics(y, proba.argmax(axis=1), labels=list(range(k)), proba=proba)
    expected = (
        skm.roc_auc_score(y, proba[:, 1])
        if k == 2
        else skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    assert m.roc_auc == pytest.approx(expected)


# --- the sketch: merges like addition, serializes exactly -------------------------------------


def fitted(k: int, seed: int = 0, method: str = "isotonic", n_bins: int = 20) -> Calibrator:
    y, proba = calibrated_model(seed, 2000, k)
    return Calibrator(method=method, n_bins=n_bins).fit(y, proba, classes=list(range(k)))


CALIBRATORS = {k: fitted(k) for k in (2, 3)}


@settings(max_examples=50, deadline=None)
@given(
    k=st.sampled_from([2, 3]),
    seed=st.integers(0, 2**32 - 1),
    sizes=st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40)),
)
def test_sketch_merge_is_commutative_associative_and_equals_the_concatenation(
    k: int, seed: int, sizes: tuple[int, int, int]
) -> None:
    cal = CALIBRATORS[k]
    batches = [calibrated_model(seed + i, n, k)[1] for i, n in enumerate(sizes)]
    a, b, c = (cal.sketch(p) for p in batches)
    assert (a + b).equals(b + a)
    assert ((a + b) + c).equals(a + (b + c), rtol=1e-12)
    assert (a + b + c).equals(cal.sketch(np.concatenate(batches)), rtol=1e-12)
    assert (a + cal.empty_sketch()).equals(a)


def test_sketch_and_calibrator_serialize_to_json_exactly() -> None:
    cal = CALIBRATORS[3]
    _, proba = calibrated_model(9, 500, 3)
    sketch = cal.sketch(proba)
    again = PerformanceSketch.from_dict(json.loads(json.dumps(sketch.to_dict())))
    assert again.equals(sketch)
    assert estimate(again) == estimate(sketch)
    restored = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert restored.fingerprint == cal.fingerprint
    assert np.array_equal(restored.transform(proba), cal.transform(proba))


def test_the_fingerprint_follows_a_refit() -> None:
    """The fingerprint is kept between sketches, yet a refit on other data changes it (and a
    refit on the same data gives the same one)."""
    labels, proba = calibrated_model(31, 2_000, 2)
    cal = Calibrator().fit(labels, proba, classes=[0, 1])
    first = cal.fingerprint
    assert cal.sketch(proba[:10]).calibrator == first == cal.fingerprint
    other_labels, other_proba = calibrated_model(32, 2_000, 2)
    cal.fit(other_labels, other_proba, classes=[0, 1])
    assert cal.fingerprint != first
    assert (
        cal.fingerprint == Calibrator().fit(other_labels, other_proba, classes=[0, 1]).fingerprint
    )
    assert cal.fit(labels, proba, classes=[0, 1]).fingerprint == first


def test_sketches_of_different_calibrators_do_not_merge() -> None:
    _, proba = calibrated_model(1, 50, 2)
    with pytest.raises(DataError, match="cannot merge"):
        _ = CALIBRATORS[2].sketch(proba) + fitted(2, seed=5).sketch(proba)


# --- CBPE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("method", ["none", "isotonic"])
def test_cbpe_on_a_calibrated_model_estimates_realized_metrics(k: int, method: str) -> None:
    y_ref, p_ref = calibrated_model(10 + k, 10_000, k)
    cal = Calibrator(method=method).fit(y_ref, p_ref, classes=list(range(k)))
    y, proba = calibrated_model(20 + k, 20_000, k)
    # The serving path: micro-batches, merged.
    sketch = cal.empty_sketch()
    for part in np.array_split(proba, 37):
        sketch = sketch + cal.sketch(part)
    est = estimate(sketch)
    real = realized_metrics(y, proba.argmax(axis=1), labels=list(range(k)), proba=proba)
    assert est.n == real.n == 20_000
    assert est.accuracy == pytest.approx(real.accuracy, abs=0.01)
    assert est.f1_macro == pytest.approx(real.f1_macro, abs=0.015)
    assert est.roc_auc == pytest.approx(real.roc_auc, abs=0.01)
    assert est.accuracy_lower < est.accuracy < est.accuracy_upper
    assert est.f1_lower < est.f1_macro < est.f1_upper


def test_calibration_repairs_an_overconfident_model() -> None:
    y_ref, p_ref = calibrated_model(1, 10_000, 3)
    y, p = calibrated_model(2, 10_000, 3)

    def sharpen(proba: np.ndarray) -> np.ndarray:
        out: np.ndarray = proba**3 / (proba**3).sum(axis=1, keepdims=True)
        return out

    real = realized_metrics(y, p.argmax(axis=1), labels=[0, 1, 2])
    identity = Calibrator(method="none").fit(y_ref, sharpen(p_ref), [0, 1, 2])
    isotonic = Calibrator().fit(y_ref, sharpen(p_ref), [0, 1, 2])
    raw = estimate(identity.sketch(sharpen(p)))
    fixed = estimate(isotonic.sketch(sharpen(p)))
    assert raw.accuracy - real.accuracy > 0.05
    assert fixed.accuracy == pytest.approx(real.accuracy, abs=0.015)


def test_band_covers_the_realized_accuracy_at_its_nominal_rate() -> None:
    cal = Calibrator(method="none", n_bins=10).fit(*calibrated_model(0, 1000, 3), [0, 1, 2])
    hits_acc, hits_f1 = 0, 0
    for seed in range(200):
        y, proba = calibrated_model(1000 + seed, 400, 3)
        est = estimate(cal.sketch(proba), confidence=0.9)
        real = realized_metrics(y, proba.argmax(axis=1), labels=[0, 1, 2])
        hits_acc += est.accuracy_lower <= real.accuracy <= est.accuracy_upper
        hits_f1 += est.f1_lower <= real.f1_macro <= est.f1_upper
    assert 0.84 <= hits_acc / 200 <= 0.96
    assert 0.84 <= hits_f1 / 200 <= 0.96


def test_compare_puts_estimates_next_to_realized_metrics() -> None:
    y, proba = calibrated_model(4, 3000, 2)
    cal = Calibrator(method="none").fit(y, proba, [0, 1])
    est = estimate(cal.sketch(proba))
    before = compare(est, None)
    assert [c.realized for c in before] == [None, None, None]
    after = compare(est, realized_metrics(y, proba.argmax(axis=1), labels=[0, 1], proba=proba))
    assert [c.metric for c in after] == ["accuracy", "f1_macro", "roc_auc"]
    assert all(c.error is not None and abs(c.error) < 0.03 for c in after)


def test_calibrator_and_estimate_validate_their_input() -> None:
    with pytest.raises(ConfigurationError, match=r"method must be one of \('isotonic', 'none'\)"):
        Calibrator(method="platt")
    with pytest.raises(ConfigurationError, match=r"n_bins must be an integer in \[2, inf\); got 1"):
        Calibrator(n_bins=1)
    with pytest.raises(DataError, match="not fitted"):
        Calibrator().sketch(np.array([[0.5, 0.5]]))
    with pytest.raises(DataError, match="no rows of class"):
        Calibrator().fit([0, 0, 1], np.full((3, 3), 1 / 3), classes=[0, 1, 2])
    with pytest.raises(DataError, match="shape"):
        CALIBRATORS[2].sketch(np.ones((4, 3)) / 3)
    with pytest.raises(DataError, match="no rows"):
        estimate(CALIBRATORS[2].empty_sketch())
    with pytest.raises(ConfigurationError, match="confidence"):
        estimate(CALIBRATORS[2].sketch(np.array([[0.2, 0.8]])), confidence=1.0)


# --- importance weighting (issue 11 point 3) ------------------------------------------------


def _circle(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    inside = 1.0 / (1.0 + np.exp(4.0 * ((x**2).sum(axis=1) - 1.5)))
    return (rng.random(len(x)) < inside).astype(int)


def test_importance_weighting_beats_cbpe_on_a_misspecified_model() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    x_train = rng.normal(size=(5_000, 2))
    model = LogisticRegression().fit(x_train, _circle(rng, x_train))
    x_hold = rng.normal(size=(5_000, 2))
    y_hold = _circle(rng, x_hold)
    proba_hold = model.predict_proba(x_hold)
    calibrator = Calibrator().fit(y_hold, proba_hold, [0, 1])
    weighted = ImportanceWeightedAccuracy().fit(x_hold, proba_hold.argmax(axis=1) == y_hold)
    iw_errors, cbpe_errors, covered = [], [], 0
    for shift in ([1.0, 0.0], [0.0, -1.2], [0.8, 0.8], [-1.0, 0.5]):
        x = rng.normal(size=(5_000, 2)) * 0.8 + shift
        y = _circle(rng, x)
        proba = model.predict_proba(x)
        realized = float((proba.argmax(axis=1) == y).mean())
        cbpe = estimate(calibrator.sketch(proba))
        iw = weighted.estimate(x, cbpe)
        assert iw.estimator == "doubly_robust" and iw.effective_sample_size is not None
        iw_errors.append(abs(iw.accuracy - realized))
        cbpe_errors.append(abs(cbpe.accuracy - realized))
        covered += iw.accuracy_lower <= realized <= iw.accuracy_upper
    assert np.mean(iw_errors) < 0.5 * np.mean(cbpe_errors)
    assert covered == 4


def test_importance_weights_without_shift_are_nearly_uniform() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4_000, 3))
    correct = rng.random(4_000) < 0.8
    weighted = ImportanceWeightedAccuracy(domain="logistic", outcome="calibration").fit(x, correct)
    w = weighted.weights(rng.normal(size=(4_000, 3)))
    assert w.mean() == pytest.approx(1.0)
    ess = w.sum() ** 2 / (w**2).sum()
    assert ess > 0.95 * 4_000
    est = weighted.estimate(rng.normal(size=(4_000, 3)))
    assert est.accuracy == pytest.approx(correct.mean(), abs=0.005)
    assert est.effective_sample_size == pytest.approx(ess, rel=0.05)


@pytest.mark.parametrize("domain", ["logistic", "boosting"])
def test_importance_weighting_falls_back_to_cbpe_when_weights_degenerate(domain: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2_000, 2))
    weighted = ImportanceWeightedAccuracy(min_ess=300, domain=domain).fit(
        x, rng.random(2_000) < 0.7
    )
    far = rng.normal(size=(2_000, 2)) * 0.3 + [4.0, -4.0]  # almost no reference row is like it
    fallback = PerformanceEstimate(0.5, 0.45, 0.55, 0.5, 0.45, 0.55, None, 2_000, 0.95)
    est = weighted.estimate(far, fallback)
    assert est.estimator == "cbpe" and est.accuracy == 0.5
    assert est.effective_sample_size is not None and est.effective_sample_size < 300
    assert weighted.estimate(far).estimator == "doubly_robust"  # no fallback given


def test_doubly_robust_band_is_binomial_without_shift() -> None:
    # Correctness independent of x (p = 0.7), window like the reference: the band is the
    # window's binomial noise plus the reference mean's, as scipy's binomial gives them.
    rng = np.random.default_rng(11)
    n_ref, n_win = 4_000, 2_000
    weighted = ImportanceWeightedAccuracy(domain="logistic").fit(
        rng.normal(size=(n_ref, 2)), rng.random(n_ref) < 0.7
    )
    est = weighted.estimate(rng.normal(size=(n_win, 2)))
    sd = math.hypot(stats.binom.std(n_win, 0.7) / n_win, stats.binom.std(n_ref, 0.7) / n_ref)
    half = (est.accuracy_upper - est.accuracy_lower) / 2
    assert est.estimator == "doubly_robust"
    assert est.accuracy == pytest.approx(0.7, abs=0.02)
    assert half == pytest.approx(stats.norm.ppf(0.975) * sd, rel=0.15)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.floats(-2.0, 2.0), cbpe=st.floats(0.3, 0.95))
def test_doubly_robust_band_holds_every_estimate(seed: int, shift: float, cbpe: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 2))
    confidence = rng.uniform(0.5, 1.0, 600)
    correct = rng.random(600) < confidence
    weighted = ImportanceWeightedAccuracy(min_ess=1.0, folds=2).fit(x, correct, confidence)
    window = rng.normal(size=(300, 2)) + shift
    fallback = PerformanceEstimate(cbpe, cbpe - 0.01, cbpe + 0.01, cbpe, 0, 1, None, 300, 0.95)
    est = weighted.estimate(window, fallback, window_confidence=rng.uniform(0.5, 1.0, 300))
    assert 0.0 <= est.accuracy_lower <= est.accuracy <= est.accuracy_upper <= 1.0
    # The band spans CBPE and the doubly robust estimate, whichever is reported.
    assert est.accuracy_lower <= cbpe <= est.accuracy_upper
    assert est.estimator in {"cbpe", "doubly_robust"}
    assert (est.estimator == "cbpe") == (est.accuracy == cbpe)


def test_boosted_outcome_needs_the_window_confidence() -> None:
    rng = np.random.default_rng(12)
    weighted = ImportanceWeightedAccuracy(folds=2).fit(
        rng.normal(size=(400, 2)), rng.random(400) < 0.8, rng.uniform(0.5, 1.0, 400)
    )
    with pytest.raises(DataError, match="window_confidence is needed"):
        weighted.estimate(rng.normal(size=(100, 2)))
    with pytest.raises(DataError, match="3 values for 100 rows"):
        weighted.estimate(rng.normal(size=(100, 2)), window_confidence=[0.9, 0.9, 0.9])
    with pytest.raises(ConfigurationError, match="outcome"):
        ImportanceWeightedAccuracy(outcome="forest")
    with pytest.raises(ConfigurationError, match="folds"):
        ImportanceWeightedAccuracy(folds=1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.floats(-2.0, 2.0))
def test_importance_weighted_accuracy_properties(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, 2))
    correct = rng.random(500) < 0.6
    weighted = ImportanceWeightedAccuracy(
        max_weight=20.0, domain="logistic", outcome="calibration"
    ).fit(x, correct)
    window = rng.normal(size=(300, 2)) + shift
    w = weighted.weights(window)
    assert (w >= 0).all() and w.mean() == pytest.approx(1.0)
    est = weighted.estimate(window)
    assert 0.0 <= est.accuracy_lower <= est.accuracy <= est.accuracy_upper <= 1.0
    # A weighted mean of the 0/1 correctness flags: equal to the flags' mean under its weights.
    assert est.accuracy == pytest.approx(float(np.sum(w * correct) / np.sum(w)))


def test_importance_weighting_validates() -> None:
    with pytest.raises(ConfigurationError, match="min_ess"):
        ImportanceWeightedAccuracy(min_ess=0.5)
    weighted = ImportanceWeightedAccuracy()
    with pytest.raises(DataError, match="fit the estimator"):
        weighted.weights(np.zeros((10, 2)))
    with pytest.raises(DataError, match="one row per correctness flag"):
        weighted.fit(np.zeros((10, 2)), np.ones(9))
    with pytest.raises(DataError, match="0/1"):
        weighted.fit(np.zeros((3, 2)), [0, 2, 1])
    weighted.fit(np.random.default_rng(0).normal(size=(50, 2)), np.ones(50))
    with pytest.raises(DataError, match="must have 2 columns"):
        weighted.weights(np.zeros((10, 3)))


def test_a_uniform_sample_of_the_window_estimates_the_whole_window() -> None:
    """The monitor gives a bounded sample of the window and its size: the estimate is of the
    whole window (CBPE's exact mean plus the sample's mean gap), its band covers the realized
    accuracy, and it agrees with the estimate from every row within that band. With the whole
    window, ``window_rows`` changes nothing; fewer rows than the sample is refused."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(8)
    x_train = rng.normal(size=(5_000, 2))
    model = LogisticRegression().fit(x_train, _circle(rng, x_train))
    x_hold = rng.normal(size=(5_000, 2))
    y_hold = _circle(rng, x_hold)
    proba_hold = model.predict_proba(x_hold)
    calibrator = Calibrator().fit(y_hold, proba_hold, [0, 1])
    confidence_hold = calibrator.transform(proba_hold).max(axis=1)
    weighted = ImportanceWeightedAccuracy().fit(
        x_hold, proba_hold.argmax(axis=1) == y_hold, confidence_hold
    )
    x = rng.normal(size=(20_000, 2)) * 0.8 + [0.9, 0.3]
    y = _circle(rng, x)
    proba = model.predict_proba(x)
    realized = float((proba.argmax(axis=1) == y).mean())
    q = calibrator.transform(proba)[np.arange(len(x)), proba.argmax(axis=1)]
    cbpe = estimate(calibrator.sketch(proba))
    full = weighted.estimate(x, cbpe, window_confidence=q)
    assert weighted.estimate(x, cbpe, window_confidence=q, window_rows=len(x)) == full
    rows = rng.choice(len(x), 2_000, replace=False)
    sampled = weighted.estimate(x[rows], cbpe, window_confidence=q[rows], window_rows=len(x))
    assert sampled.n == len(x) and sampled.estimator == full.estimator == "doubly_robust"
    assert sampled.accuracy_lower <= realized <= sampled.accuracy_upper
    half = (sampled.accuracy_upper - sampled.accuracy_lower) / 2
    assert abs(sampled.accuracy - full.accuracy) < half
    assert abs(sampled.accuracy - realized) < 0.5 * abs(cbpe.accuracy - realized)
    with pytest.raises(DataError, match="below the sample"):
        weighted.estimate(x[rows], cbpe, window_confidence=q[rows], window_rows=10)
