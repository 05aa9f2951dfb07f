"""The LSTM autoencoder: known answer, seeding, persistence, protocol; and the error naming the
extra when torch is missing (that test runs without torch too)."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.dataset import METRIC_COLUMNS, generate_host_metrics
from driftline.anomaly.detector_training import train_anomaly_bundle
from driftline.anomaly.lstm import LSTMAutoencoderDetector, torch_available
from driftline.anomaly.models import CLASSES, AnomalyDetector
from driftline.errors import ConfigurationError
from driftline.models.base import Model
from driftline.models.bundle import ModelBundle

#: Skipped without PyTorch, saying how to get it; in CI (CI=1) they run, and fail, instead.
NO_TORCH = (
    "PyTorch is not installed (the optional 'lstm' extra): run the README's test line, which "
    "installs it first, or `.venv/bin/pip install 'torch==2.13.0'`"
)
needs_torch = pytest.mark.skipif(
    not torch_available() and not os.environ.get("CI"), reason=NO_TORCH
)


def _small(**kwargs: int | float) -> LSTMAutoencoderDetector:
    params: dict[str, int | float] = {"window": 10, "epochs": 12, "contamination": 0.02}
    params.update(kwargs)
    return LSTMAutoencoderDetector(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def wave() -> pd.DataFrame:
    t = np.arange(800)
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"a": np.sin(t / 6) + rng.normal(0, 0.05, len(t)), "b": np.cos(t / 6)}
    )


@pytest.fixture(scope="module")
def fitted(wave: pd.DataFrame) -> LSTMAutoencoderDetector:
    if not torch_available() and not os.environ.get("CI"):
        pytest.skip(NO_TORCH)
    return _small(seed=0).fit(wave)


def test_missing_torch_raises_an_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, wave: pd.DataFrame
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ConfigurationError, match=r"pip install 'driftline\[lstm\]'"):
        _small().fit(wave)


@needs_torch
def test_injected_anomalies_are_flagged(
    fitted: LSTMAutoencoderDetector, wave: pd.DataFrame
) -> None:
    probe = wave.iloc[:200].copy().reset_index(drop=True)
    probe.loc[120, "a"] = 3.5  # a spike
    probe.loc[60:64, "b"] = 0.0  # a flat stretch breaking the rhythm
    flags = fitted.flag(probe)
    assert flags[120] and flags[60:65].any()
    normal_rows = np.r_[0:50, 80:110, 140:200]
    assert flags[normal_rows].mean() < 0.05
    score = fitted.score(probe)
    assert score[120] > 10 * np.median(score)


@needs_torch
def test_training_loss_decreases(fitted: LSTMAutoencoderDetector) -> None:
    assert len(fitted.losses_) == 12 and fitted.losses_[-1] < 0.5 * fitted.losses_[0]


@needs_torch
def test_protocol_and_short_frames(fitted: LSTMAutoencoderDetector, wave: pd.DataFrame) -> None:
    assert isinstance(fitted, Model) and isinstance(fitted, AnomalyDetector)
    assert fitted.classes == CLASSES
    proba = fitted.predict_proba(wave.iloc[:100])
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1) == 1, fitted.flag(wave.iloc[:100]))
    # One row (a served record) and fewer rows than a window still score.
    assert fitted.score(wave.iloc[:1]).shape == (1,)
    assert fitted.score(wave.iloc[:3]).shape == (3,)


@needs_torch
def test_same_seed_same_scores_and_threads_restored(wave: pd.DataFrame) -> None:
    import torch

    before = torch.get_num_threads()
    a = _small(seed=1, epochs=3).fit(wave)
    assert torch.get_num_threads() == before
    b = _small(seed=1, epochs=3).fit(wave)
    c = _small(seed=2, epochs=3).fit(wave)
    np.testing.assert_array_equal(a.score(wave), b.score(wave))
    assert not np.array_equal(a.score(wave), c.score(wave))


@needs_torch
def test_joblib_round_trip_keeps_numpy_weights(
    fitted: LSTMAutoencoderDetector, wave: pd.DataFrame, tmp_path: Path
) -> None:
    state = fitted.__getstate__()
    assert state["_net"] is None
    assert all(isinstance(v, np.ndarray) for v in state["_weights"].values())
    joblib.dump(fitted, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_allclose(loaded.score(wave), fitted.score(wave), rtol=1e-6)
    assert loaded.threshold_ == fitted.threshold_
    assert pickle.loads(pickle.dumps(loaded)).features_ == ("a", "b")


@needs_torch
def test_bundle_on_the_generated_dataset(tmp_path: Path) -> None:
    data = generate_host_metrics(4_000, seed=2)
    bundle = train_anomaly_bundle(data, "lstm", seed=0)
    assert bundle.kind == "lstm_ae" and bundle.schema.names == METRIC_COLUMNS
    assert bundle.metrics["roc_auc"] > 0.9  # 0.99 at this seed
    loaded = ModelBundle.load(bundle.save(tmp_path / "lstm"))
    predictions = loaded.predict_frame(data.iloc[:300])
    assert predictions.classes == CLASSES and len(predictions) == 300


def test_constructor_validates() -> None:
    with pytest.raises(ConfigurationError, match="window must be at least 2, got 1"):
        LSTMAutoencoderDetector(window=1)
    with pytest.raises(ConfigurationError, match=r"contamination must be in \(0, 0.5\]"):
        LSTMAutoencoderDetector(contamination=0.0)
    with pytest.raises(ConfigurationError, match="num_threads"):
        LSTMAutoencoderDetector(num_threads=0)
    with pytest.raises(ConfigurationError, match="not fitted"):
        LSTMAutoencoderDetector().score(pd.DataFrame({"a": [1.0]}))
