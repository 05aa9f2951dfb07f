"""The notebook API: driftline.compare / profile / estimate_performance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import driftline
from driftline.drift.decision import DriftPolicy, decide_drift, decide_prediction_drift
from driftline.errors import DataError
from driftline.performance import Calibrator, estimate
from driftline.profiles import DatasetProfile, build_reference_profile
from driftline.quality import check_quality
from driftline.schema import infer_schema


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    score = rng.beta(2, 5 - min(shift, 2.0), n)
    return pd.DataFrame(
        {
            "income": rng.normal(50 + shift * 10, 10, n),
            "age": rng.integers(18, 80, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            "has_cosigner": rng.random(n) < 0.3,
            "prediction": (score > 0.5).astype(int),
            "score": score,
        }
    )


def test_compare_is_the_monitor_decision_on_the_same_profiles() -> None:
    rng = np.random.default_rng(0)
    reference, current = _rows(rng, 8_000), _rows(rng, 3_000, shift=0.3)
    features = reference[["income", "age", "region", "has_cosigner"]]
    report = driftline.compare(features, current[features.columns])

    schema = infer_schema(features, None)
    ref_profile = build_reference_profile(schema.coerce_frame(features), schema, seed=0)
    window = ref_profile.empty_like(seed=1)
    window.add_frame(schema.coerce_frame(current[features.columns]))
    assert report.data_drift == decide_drift(ref_profile, window)
    assert report.quality == check_quality(ref_profile, window)
    assert report.drifted_features == ("income",)
    assert report.status == "critical"
    assert report["income"].p_adjusted is not None
    assert report["income"].p_adjusted < 0.05
    assert report["age"].severity == "none"


def test_prediction_drift_when_output_columns_are_named() -> None:
    rng = np.random.default_rng(1)
    reference, current = _rows(rng, 6_000), _rows(rng, 3_000, shift=1.5)
    report = driftline.compare(reference, current, prediction="prediction", score="score")
    assert "prediction" not in report.data_drift.drifted_features
    assert [f.feature for f in report.data_drift.features] == [
        "income",
        "age",
        "region",
        "has_cosigner",
    ]
    assert report.prediction_drift is not None
    assert report.prediction_drift.severity == "critical"
    assert {f.feature for f in report.prediction_drift.features} == {"prediction", "score"}
    assert report.prediction_drift == decide_prediction_drift(
        report.reference_outputs,  # type: ignore[arg-type]
        report.current_outputs,  # type: ignore[arg-type]
    )
    frame = report.to_frame()
    assert set(frame.loc[frame["role"] == "output"].index) == {"prediction", "score"}


def test_no_drift_between_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(2)
    report = driftline.compare(_rows(rng, 5_000), _rows(rng, 5_000))
    assert report.status == "ok"
    assert report.drifted_features == ()
    assert not report.drifted


def test_outputs_frame_dict_html(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    report = driftline.compare(_rows(rng, 4_000), _rows(rng, 2_000, shift=0.4), target="score")
    frame = report.to_frame()
    assert list(frame.columns[:5]) == ["role", "kind", "severity", "drifted", "method"]
    assert frame.loc["income", "severity"] == "critical"
    assert frame.loc["region", "method"] == "chi_square"
    body = report.to_dict()
    json.dumps(body, allow_nan=False)  # JSON-safe: no NaN, no numpy
    assert body["data_drift"]["features"][0]["feature"] == "income"
    assert body["status"] == report.status
    page = report.to_html(tmp_path / "compare.html")
    assert (tmp_path / "compare.html").read_text(encoding="utf-8") == page
    assert "Plotly.newPlot" in page
    assert "income" in page
    snippet = report._repr_html_()
    assert "<table" in snippet
    assert "critical" in snippet
    assert "income" in repr(report)


def test_profiles_merge_serialise_and_compare() -> None:
    rng = np.random.default_rng(4)
    reference = driftline.profile(_rows(rng, 5_000))
    later = _rows(rng, 3_000, shift=0.5)
    day1 = driftline.profile(later.iloc[:1_000], reference)
    day2 = driftline.profile(later.iloc[1_000:], reference)
    merged = day1.merge(day2)
    whole = driftline.profile(later, reference)
    for name in ("income", "age", "region"):
        np.testing.assert_array_equal(
            merged.features[name].counts,  # type: ignore[union-attr]
            whole.features[name].counts,  # type: ignore[union-attr]
        )
    restored = DatasetProfile.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert restored == reference
    by_profiles = driftline.compare(restored, merged)
    assert by_profiles.data_drift == decide_drift(reference, merged)
    assert "income" in by_profiles.drifted_features


def test_clear_errors() -> None:
    rng = np.random.default_rng(5)
    reference = _rows(rng, 500)
    with pytest.raises(DataError, match=r"lacks feature column\(s\) \['region'\]"):
        driftline.compare(reference, reference.drop(columns=["region"]))
    with pytest.raises(DataError, match="output column"):
        driftline.compare(
            reference, reference.drop(columns=["score"]), prediction="prediction", score="score"
        )
    with pytest.raises(DataError, match="score needs prediction"):
        driftline.compare(reference, reference, score="score")
    profile = driftline.profile(reference)
    with pytest.raises(DataError, match="window profile"):
        driftline.compare(profile, reference)


def test_policy_is_honoured() -> None:
    rng = np.random.default_rng(6)
    reference, current = _rows(rng, 8_000), _rows(rng, 8_000, shift=0.1)
    default = driftline.compare(reference, current)
    relaxed = driftline.compare(
        reference, current, policy=DriftPolicy(numeric_warning=0.5, numeric_critical=1.0)
    )
    assert "income" in default.drifted_features
    assert "income" not in relaxed.drifted_features


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(200, 2_000),
    scale=st.floats(0.1, 1_000.0),
)
def test_a_sample_never_drifts_from_itself(seed: int, n: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(0, scale, n), "c": rng.choice(["a", "b", "c", "d"], n)})
    report = driftline.compare(frame, frame)
    assert report.drifted_features == ()
    for feature in report.data_drift.features:
        assert feature.effect_size == pytest.approx(0.0, abs=1e-12)


def test_estimate_performance_is_cbpe() -> None:
    rng = np.random.default_rng(7)
    p_ref = rng.beta(2, 2, 4_000)
    y_ref = (rng.random(4_000) < p_ref).astype(int)
    proba_ref = np.column_stack([1 - p_ref, p_ref])
    p_now = rng.beta(5, 2, 3_000)  # covariate shift towards confident rows
    proba_now = np.column_stack([1 - p_now, p_now])
    got = driftline.estimate_performance(y_ref, proba_ref, proba_now, classes=[0, 1])
    calibrator = Calibrator().fit(y_ref, proba_ref, [0, 1])
    assert got == estimate(calibrator.sketch(proba_now))
    y_now = (rng.random(3_000) < p_now).astype(int)
    realized = float(np.mean(proba_now.argmax(axis=1) == y_now))
    assert got.accuracy == pytest.approx(realized, abs=0.03)
    with pytest.raises(DataError):
        driftline.estimate_performance(y_ref, proba_ref, np.empty((0, 2)), classes=[0, 1])


def test_the_statistical_core_imports_light() -> None:
    """`import driftline` and a whole comparison load no server, registry or database code."""
    code = (
        "import sys, numpy as np, pandas as pd, driftline\n"
        "rng = np.random.default_rng(0)\n"
        "f = pd.DataFrame({'x': rng.normal(size=500), 'c': rng.choice(['a', 'b'], 500)})\n"
        "driftline.compare(f, f.assign(x=f.x + 1), prediction=None)\n"
        "driftline.profile(f)\n"
        "heavy = ('mlflow', 'fastapi', 'starlette', 'sqlalchemy', 'redis', 'uvicorn', 'river',"
        " 'plotly', 'psycopg')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""


def test_cli_check_compares_two_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from driftline.cli import app

    rng = np.random.default_rng(8)
    reference, current = _rows(rng, 4_000), _rows(rng, 2_000, shift=0.4)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_parquet(tmp_path / "current.parquet")
    args = [
        "--home",
        str(tmp_path / "home"),
        "check",
        "--reference",
        str(tmp_path / "reference.csv"),
        "--current",
        str(tmp_path / "current.parquet"),
        "--prediction",
        "prediction",
        "--score",
        "score",
    ]
    result = CliRunner().invoke(app, [*args, "--json", "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 3, result.output  # critical, as `check` on a live window
    body = json.loads(result.output)
    expected = driftline.compare(reference, current, prediction="prediction", score="score")
    assert body["status"] == expected.status == "critical"
    assert [f["feature"] for f in body["data_drift"]["features"]] == [
        f.feature for f in expected.data_drift.features
    ]
    assert [f["severity"] for f in body["data_drift"]["features"]] == [
        f.severity for f in expected.data_drift.features
    ]
    assert body["prediction_drift"]["severity"] == expected.prediction_drift.severity  # type: ignore[union-attr]
    assert (tmp_path / "r.html").exists()
    assert not (tmp_path / "home").exists()  # no store, no registry: nothing created
    printed = CliRunner().invoke(app, args)
    assert printed.exit_code == 3
    assert "income" in printed.output
    assert "Performance" not in printed.output
    missing = CliRunner().invoke(app, ["check", "--reference", str(tmp_path / "reference.csv")])
    assert missing.exit_code == 1
    assert "--current" in missing.output


def test_readme_notebook_example_runs() -> None:
    """The README's runnable example of driftline.compare, as a doctest."""
    import doctest

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### In a notebook: `driftline.compare`", 1)[1].split("\n### ", 1)[0]
    examples = [
        block.split("```", 1)[0]
        for block in section.split("```python\n")[1:]
        if block.lstrip().startswith(">>>")
    ]
    assert len(examples) == 1
    test = doctest.DocTestParser().get_doctest(examples[0], {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 4
    assert result.failed == 0
