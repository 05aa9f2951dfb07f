"""The online model kind (river's Adaptive Random Forest): learning, persistence, continuing
from a champion, and online learning in serving with checkpoints."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from driftline.cli import app as cli_app
from driftline.config import Settings
from driftline.data import generate_loans
from driftline.errors import ConfigurationError, DataError, RegistryError
from driftline.models import ARFModel, Model, ModelBundle, OnlineModel, continue_training
from driftline.models.bundle import LEGACY_MODEL_FILE, MODEL_FILE
from driftline.registry import CHAMPION, Registry
from driftline.schema import FeatureSchema, infer_schema
from driftline.service import create_app
from driftline.service import online_learning as online_module
from driftline.service.online_learning import state_key
from driftline.service.runtime import ServingRuntime
from driftline.store import open_store, queries
from driftline.training import continue_training_bundle, train_model

TARGET = "y"


def stream(n: int, *, seed: int, concept: str = "a") -> pd.DataFrame:
    """A seeded stream with a deterministic label rule (no label noise).

    Concept ``a``: ``yes`` when ``x1 + 1.5 * [city == "north"] > 0.5``. Concept ``b``: ``yes``
    when ``x2 < 0`` — a rule on another feature, which a model of ``a`` cannot know.
    Missing values in ``x3`` and ``city``, a boolean, a feature that does not matter.
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    x3 = rng.uniform(0, 10, size=n)
    x3[rng.random(n) < 0.1] = np.nan
    city = rng.choice(["north", "south", "east"], size=n).astype(object)
    flag = rng.random(n) < 0.5
    yes = x1 + 1.5 * (city == "north") > 0.5 if concept == "a" else x2 < 0
    city[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "city": city,
            "flag": flag,
            TARGET: np.where(yes, "yes", "no"),
        }
    )


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[TARGET])


def accuracy(model: ARFModel, frame: pd.DataFrame) -> float:
    predicted = model.predict(features(frame))
    return float(np.mean(np.array(predicted, dtype=object) == frame[TARGET].to_numpy()))


@pytest.fixture(scope="module")
def schema() -> FeatureSchema:
    return infer_schema(stream(500, seed=0), TARGET)


@pytest.fixture(scope="module")
def fitted(schema: FeatureSchema) -> ARFModel:
    """Five trees that learned 2,000 rows of concept ``a``."""
    model = ARFModel(schema, n_models=5, seed=0)
    train = stream(2_000, seed=1)
    model.learn_many(features(train), train[TARGET])
    return model


# --- the model ----------------------------------------------------------------------------------


def test_it_is_a_model_and_an_online_model(fitted: ARFModel) -> None:
    assert isinstance(fitted, Model) and isinstance(fitted, OnlineModel)
    assert fitted.classes == ("no", "yes")
    assert fitted.n_trees == 5 and fitted.n_learned == 2_000


def test_known_answer_stream_reaches_high_accuracy(schema: FeatureSchema) -> None:
    """Prequential (test-then-train) accuracy on a noiseless seeded stream."""
    model = ARFModel(schema, n_models=5, seed=0)
    data = stream(2_000, seed=3)
    records = features(data).to_dict("records")
    hits = []
    for record, label in zip(records, data[TARGET], strict=True):
        hits.append(model.predict_proba_records([record]).argmax() == model.classes.index(label))
        model.learn_one(record, label)
    late = float(np.mean(hits[-500:]))
    majority = float(max(np.mean(data[TARGET] == "yes"), np.mean(data[TARGET] == "no")))
    assert late >= 0.93 and late > majority + 0.3, (late, majority)
    assert accuracy(model, stream(1_000, seed=4)) >= 0.93


def test_learn_one_learns_a_concept_it_never_saw(fitted: ARFModel) -> None:
    model = fitted.snapshot()
    test_b = stream(1_000, seed=5, concept="b")
    before = accuracy(model, test_b)
    assert before < 0.65  # concept a says nothing about x2
    train_b = stream(2_000, seed=6, concept="b")
    for record, label in zip(features(train_b).to_dict("records"), train_b[TARGET], strict=True):
        model.learn_one(record, label)
    after = accuracy(model, test_b)
    assert after >= 0.9 and after - before >= 0.3, (before, after)
    assert accuracy(fitted, test_b) == before  # the snapshot learned, not the original


def test_probabilities_cover_the_classes_and_missing_values(fitted: ARFModel) -> None:
    records: list[dict[str, Any]] = [
        {"x1": 2.0, "x2": 0.0, "x3": None, "city": None, "flag": True},
        {"x1": -2.0, "x2": 0.0, "x3": 5.0, "city": "nowhere", "flag": False},  # unseen category
        {},  # every feature missing
    ]
    proba = fitted.predict_proba_records(records)
    assert proba.shape == (3, 2)
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
    assert fitted.classes[int(proba[0].argmax())] == "yes"
    assert fitted.classes[int(proba[1].argmax())] == "no"
    frame = fitted.schema.to_frame(records)
    assert np.allclose(fitted.predict_proba(frame), proba)
    fresh = ARFModel(fitted.schema, n_models=2)
    assert np.allclose(fresh.predict_proba_records(records), 0.5)  # nothing learned: uniform


def test_labels_are_matched_to_classes_and_unknown_ones_refused(schema: FeatureSchema) -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 1, 0, 1]})
    model = ARFModel(infer_schema(frame, "y"), n_models=1)
    model.learn_one({"x": 1.0}, "1")  # as stored beside predictions
    model.learn_one({"x": 1.0}, 1.0)  # as read from a CSV with missing values
    assert model.n_learned == 2 and model.class_of("0") == 0
    with pytest.raises(DataError, match="not one of the model's classes"):
        model.learn_one({"x": 1.0}, 2)
    with pytest.raises(ConfigurationError, match="n_models must be at least 1, got 0"):
        ARFModel(schema, n_models=0)
    with pytest.raises(ConfigurationError, match="max_features"):
        ARFModel(schema, max_features="half")
    with pytest.raises(DataError, match="got 1 labels for 2 rows"):
        model.learn_many([{"x": 1.0}, {"x": 2.0}], [0])


def test_pickle_round_trip_predicts_the_same_and_keeps_learning(fitted: ARFModel) -> None:
    probe = features(stream(200, seed=7))
    copy = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(copy.predict_proba(probe), fitted.predict_proba(probe))
    assert copy.n_learned == fitted.n_learned and copy.classes == fitted.classes
    copy.learn_one(probe.iloc[0].to_dict(), "yes")  # the lock was rebuilt
    assert copy.n_learned == fitted.n_learned + 1


def test_bundle_save_and_load(tmp_path: Path) -> None:
    data = stream(800, seed=8)
    bundle = train_model(data, TARGET, kind="arf", seed=0).bundle
    assert bundle.kind == "arf" and isinstance(bundle.model, ARFModel)
    assert bundle.metrics["accuracy"] >= 0.85 and "cohen_kappa" in bundle.metrics
    assert bundle.monitoring is not None and bundle.monitoring["calibrator"] is not None
    assert bundle.meta["n_learned"] == 600
    loaded = ModelBundle.load(bundle.save(tmp_path / "bundle"), version=3)
    assert loaded.kind == "arf" and loaded.version == 3 and loaded.schema == bundle.schema
    probe = features(stream(100, seed=9))
    assert np.array_equal(loaded.predict_frame(probe).proba, bundle.predict_frame(probe).proba)
    records = probe.to_dict("records")
    assert np.array_equal(loaded.predict_records(records).proba, bundle.predict_frame(probe).proba)
    with (tmp_path / "bundle" / MODEL_FILE).open("rb") as pickled:
        assert isinstance(pickle.load(pickled), ARFModel)
    # A bundle written before model.pkl (joblib's model.joblib) still loads.
    (tmp_path / "bundle" / MODEL_FILE).unlink()
    joblib.dump(bundle.model, tmp_path / "bundle" / LEGACY_MODEL_FILE, compress=3)
    legacy = ModelBundle.load(tmp_path / "bundle")
    assert np.array_equal(legacy.predict_frame(probe).proba, bundle.predict_frame(probe).proba)


def test_registry_register_and_load(registry: Registry) -> None:
    bundle = train_model(stream(600, seed=10), TARGET, kind="arf", seed=0).bundle
    version = registry.register(bundle, actor="test")
    assert registry.alias(CHAMPION) == version
    loaded = registry.load(version)
    assert loaded.kind == "arf" and isinstance(loaded.model, ARFModel)
    probe = features(stream(50, seed=11))
    assert np.array_equal(loaded.predict_frame(probe).proba, bundle.predict_frame(probe).proba)
    info = registry.versions()[0]
    assert info.kind == "arf" and info.metrics["accuracy"] == pytest.approx(
        bundle.metrics["accuracy"]
    )


def test_train_cli_trains_an_online_model(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "stream.csv"
    stream(600, seed=12).to_csv(data, index=False)
    result = CliRunner().invoke(
        cli_app,
        ["--home", str(settings.home), "train", str(data), "-t", TARGET, "-m", "arf"],
    )
    assert result.exit_code == 0, result.output
    assert "Cohen's kappa" in result.output and "version 1" in result.output
    assert "450/450" in result.output  # the row progress bar reached the end
    store = open_store(settings.database_url)
    try:
        assert Registry.from_settings(settings, store).versions()[0].kind == "arf"
    finally:
        store.dispose()


# --- continuing from a champion ---------------------------------------------------------------


def test_continue_training_keeps_schema_and_renews_a_share_of_trees(fitted: ARFModel) -> None:
    champion = fitted.snapshot()
    champion_weights = champion.tree_weights()
    probe = features(stream(300, seed=13))
    champion_proba = champion.predict_proba(probe)
    new = stream(500, seed=14)  # the same concept: no tree is replaced by drift detection
    challenger = continue_training(champion, features(new), new[TARGET], seed=3)

    assert challenger is not champion
    assert challenger.schema == champion.schema and challenger.classes == champion.classes
    assert challenger.n_models == champion.n_models == challenger.n_trees
    assert challenger.n_learned == champion.n_learned + 500
    # 40% of five trees, the ones the forest trusted least, were replaced by fresh ones ...
    assert len(challenger.renewed_trees) == 2
    weights = challenger.tree_weights()
    renewed = set(challenger.renewed_trees)
    kept = 0
    for i, (before, after) in enumerate(zip(champion_weights, weights, strict=True)):
        if i in renewed:
            assert after < before and after < 500 * 6 * 1.3  # only the new rows (Poisson 6)
        elif challenger.forest.n_drifts_detected(i) == champion.forest.n_drifts_detected(i):
            assert after > before  # kept what it knew, and learned the new rows
            kept += 1
        # (else the forest's own drift detector replaced that tree meanwhile: its job)
    assert kept >= 2
    # ... and the champion is untouched.
    assert champion.tree_weights() == champion_weights
    assert np.array_equal(champion.predict_proba(probe), champion_proba)
    assert accuracy(challenger, stream(1_000, seed=15)) >= 0.9


def test_renew_trees_replaces_the_least_trusted_share(fitted: ARFModel) -> None:
    model = fitted.snapshot()
    trust = [m.get() for m in model.forest._metrics]
    renewed = model.renew_trees(0.4, seed=0)
    assert len(renewed) == 2
    assert sorted(trust[i] for i in renewed) == sorted(trust)[:2]
    weights = model.tree_weights()
    assert [i for i, w in enumerate(weights) if w == 0.0] == list(renewed)
    assert model.renew_trees(0.0, seed=0) == () and model.renew_trees(1.0, seed=0) == (
        0,
        1,
        2,
        3,
        4,
    )


def test_continue_training_share_and_seed(fitted: ARFModel) -> None:
    new = stream(200, seed=16)
    none = continue_training(fitted, features(new), new[TARGET], new_tree_share=0.0, seed=1)
    assert none.renewed_trees == ()
    every = continue_training(fitted, features(new), new[TARGET], new_tree_share=1.0, seed=1)
    assert every.renewed_trees == (0, 1, 2, 3, 4)
    assert max(every.tree_weights()) < 200 * 6 * 1.5
    again = continue_training(fitted, features(new), new[TARGET], new_tree_share=0.4, seed=1)
    twice = continue_training(fitted, features(new), new[TARGET], new_tree_share=0.4, seed=1)
    probe = features(stream(100, seed=17))
    assert np.array_equal(again.predict_proba(probe), twice.predict_proba(probe))
    with pytest.raises(ConfigurationError, match=r"new_tree_share must be in \[0, 1\], got 1.5"):
        continue_training(fitted, features(new), new[TARGET], new_tree_share=1.5)


def test_continue_training_bundle_makes_a_registrable_challenger() -> None:
    champion = train_model(stream(600, seed=18), TARGET, kind="arf", seed=0).bundle
    champion.version = 4
    challenger = continue_training_bundle(champion, stream(400, seed=19), target=TARGET, seed=2)
    assert challenger.kind == "arf" and challenger.schema == champion.schema
    assert challenger.meta["continued_from"] == 4 and challenger.meta["n_learned"] == 450 + 320
    assert len(challenger.meta["renewed_trees"]) == 4  # 40% of ten trees
    assert challenger.monitoring is not None and challenger.metrics["n"] == 80


# --- online learning in serving ---------------------------------------------------------------


def loans_row(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    record = frame.drop(columns=["default"]).iloc[i].to_dict()
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}


@pytest.fixture(scope="module")
def arf_bundle() -> ModelBundle:
    return train_model(generate_loans(800, seed=20), "default", kind="arf", seed=0).bundle


def online_settings(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(
        update={
            "online_poll_seconds": 0.1,
            "online_checkpoint_labels": 20,
            "online_checkpoint_seconds": 3_600.0,
            "scheduler": False,
            **update,
        }
    )


@pytest.fixture
def registered(settings: Settings, arf_bundle: ModelBundle) -> Settings:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(arf_bundle, actor="test")
    store.dispose()
    return settings


def runtime_of(client: TestClient) -> ServingRuntime:
    rt: ServingRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def counter(client: TestClient, name: str, result: str) -> float:
    runtime = runtime_of(client)
    metric = getattr(runtime.metrics, name)
    return float(metric.labels(result=result)._value.get())


def serve_and_label(client: TestClient, frame: pd.DataFrame, ids: range) -> None:
    for i in ids:
        r = client.post("/predict", json={"features": loans_row(frame, i), "request_id": f"r{i}"})
        assert r.status_code == 200, r.text
    writer = runtime_of(client).writer
    assert writer is not None and writer.flush(10)
    labels = [{"request_id": f"r{i}", "label": int(frame["default"].iloc[i])} for i in ids]
    r = client.post("/labels", json={"labels": labels})
    assert r.status_code == 200 and r.json()["accepted"] == len(labels)


@pytest.fixture
def traffic() -> pd.DataFrame:
    return generate_loans(60, seed=21)


def test_labels_are_learned_and_checkpointed_as_the_new_champion(
    registered: Settings, traffic: pd.DataFrame
) -> None:
    settings = online_settings(registered)
    with TestClient(create_app(settings)) as client:
        runtime = runtime_of(client)
        assert runtime.champion is not None and runtime.champion.version == 1
        model = runtime.champion.model
        assert isinstance(model, ARFModel)
        learned_before = model.n_learned
        serve_and_label(client, traffic, range(30))

        wait_for(lambda: counter(client, "online_learned", "learned") == 30)
        wait_for(lambda: counter(client, "online_checkpoints", "ok") == 1)
        assert model.n_learned == learned_before + 30  # the serving champion itself learned
        assert runtime.online.pending == 10  # 20 went into the checkpoint
        champion = runtime.champion
        assert champion.version == 2 and champion.model is model  # same live model
        assert runtime.registry.alias(CHAMPION) == 2

        info = {v.version: v for v in runtime.registry.versions()}[2]
        assert info.kind == "arf"
        assert info.tags["driftline.checkpoint_of"] == "1"
        assert info.tags["driftline.learned"] == "20"
        move = runtime.registry.history(CHAMPION, limit=1)[0]
        assert (move.from_version, move.to_version, move.actor) == (1, 2, "online-learning")
        with runtime.store.sessions() as session:
            audit = queries.list_audit(session=session, limit=20)
        assert any(a.kind == "model_registered" and a.actor == "online-learning" for a in audit)

        saved = runtime.registry.load(2)  # what other workers load: the state at 20 labels
        assert isinstance(saved.model, ARFModel)
        assert saved.model.n_learned == learned_before + 20
        assert saved.meta["checkpoint_of"] == 1 and saved.monitoring is not None
        # Predictions are now logged under the checkpoint's version.
        r = client.post("/predict", json={"features": loans_row(traffic, 40)})
        assert r.json()["model_version"] == 2

        text = client.get("/metrics").text
        assert 'driftline_online_learned_labels_total{result="learned"} 30.0' in text
        assert 'driftline_online_checkpoints_total{result="ok"} 1.0' in text


def test_a_restarted_learner_resumes_from_the_checkpoint_cursor(
    registered: Settings, traffic: pd.DataFrame
) -> None:
    settings = online_settings(registered)
    with TestClient(create_app(settings)) as client:
        serve_and_label(client, traffic, range(25))
        wait_for(lambda: counter(client, "online_checkpoints", "ok") == 1)
        wait_for(lambda: counter(client, "online_learned", "learned") == 25)
        with runtime_of(client).store.sessions() as session:
            state = queries.get_state(state_key(settings.model_name), session=session)
        assert state is not None and state["version"] == 2 and state["learned_total"] == 20
    # The 5 labels learned after the checkpoint were never saved: the next learner (here, the
    # restarted worker) learns them again into version 2, and only them.
    with TestClient(create_app(settings)) as client:
        runtime = runtime_of(client)
        assert runtime.champion is not None and runtime.champion.version == 2
        model = runtime.champion.model
        assert isinstance(model, ARFModel)
        loaded = model.n_learned
        wait_for(lambda: counter(client, "online_learned", "learned") == 5)
        time.sleep(0.5)  # a few more rounds: nothing else to learn
        assert counter(client, "online_learned", "learned") == 5
        assert model.n_learned == loaded + 5 and runtime.online.learned_total == 25


def test_online_learning_can_be_switched_off(registered: Settings, traffic: pd.DataFrame) -> None:
    settings = online_settings(registered, online_learning=False)
    with TestClient(create_app(settings)) as client:
        model = runtime_of(client).champion.model  # type: ignore[union-attr]
        assert isinstance(model, ARFModel)
        learned = model.n_learned
        serve_and_label(client, traffic, range(5))
        time.sleep(0.8)
        assert model.n_learned == learned
        assert counter(client, "online_learned", "learned") == 0


@pytest.fixture
def batch_client(settings: Settings, trained_bundle: ModelBundle) -> Iterator[TestClient]:
    store = open_store(settings.database_url)
    Registry.from_settings(settings, store).register(trained_bundle, actor="test")
    store.dispose()
    with TestClient(create_app(online_settings(settings))) as client:
        yield client


def test_a_batch_champion_is_left_alone(batch_client: TestClient, traffic: pd.DataFrame) -> None:
    serve_and_label(batch_client, traffic, range(5))
    time.sleep(0.8)
    runtime = runtime_of(batch_client)
    assert runtime.online.bundle is None and runtime.registry.alias(CHAMPION) == 1
    assert counter(batch_client, "online_learned", "learned") == 0


def test_a_checkpoint_is_also_due_after_some_time(
    registered: Settings, traffic: pd.DataFrame
) -> None:
    settings = online_settings(
        registered, online_checkpoint_labels=1_000, online_checkpoint_seconds=0.5
    )
    with TestClient(create_app(settings)) as client:
        serve_and_label(client, traffic, range(5))
        wait_for(lambda: counter(client, "online_checkpoints", "ok") == 1)
        info = {v.version: v for v in runtime_of(client).registry.versions()}[2]
        assert info.tags["driftline.learned"] == "5"


def test_a_failed_checkpoint_is_retried_while_learning_goes_on(
    registered: Settings, traffic: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(online_module, "RETRY_SECONDS", 1.0)
    with TestClient(create_app(online_settings(registered))) as client:
        registry = runtime_of(client).registry
        register = registry.register
        calls: list[int] = []

        def flaky(*args: Any, **kwargs: Any) -> int:
            calls.append(1)
            if len(calls) == 1:
                raise RegistryError("MLflow is down")
            return register(*args, **kwargs)

        monkeypatch.setattr(registry, "register", flaky)
        serve_and_label(client, traffic, range(30))
        wait_for(lambda: counter(client, "online_checkpoints", "error") == 1)
        wait_for(lambda: counter(client, "online_learned", "learned") == 30)
        wait_for(lambda: counter(client, "online_checkpoints", "ok") == 1)
        assert registry.alias(CHAMPION) == 2
        assert {v.version: v for v in registry.versions()}[2].tags["driftline.learned"] == "30"
