"""The notebook API: compare two datasets, profile one, estimate accuracy without labels.

Long on purpose (600+ lines): the whole notebook API and its report object in one place.

``driftline.compare(reference, current)`` runs the path of the live monitor -- a reference
profile on the reference rows' quantile bins, a window profile of the current rows on the same
bins, then :func:`driftline.report.assess` -- so a comparison in a notebook and a live report
say the same thing about the same rows. Importing it loads the statistical core only: no
MLflow, web framework, database driver or stream client (a test checks).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd

from driftline.data.dataset import DEFAULT_BATCH_ROWS, Dataset, open_dataset
from driftline.drift.decision import DatasetDrift, DriftPolicy, FeatureDrift
from driftline.errors import DataError
from driftline.performance import Calibrator, PerformanceEstimate, estimate
from driftline.profiles import (
    DatasetProfile,
    build_reference_profile,
    category_counts,
    profile_columns,
    reference_bins,
    reference_profile,
    value_counts,
)
from driftline.quality import QualityPolicy, QualityReport
from driftline.report import (
    assess,
    distributions,
    drift_body,
    jsonable,
    overall_status,
    quality_body,
)
from driftline.schema import FeatureSchema, FeatureSpec, infer_schema

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "Comparison",
    "Part",
    "ProfileCounter",
    "Rows",
    "compare",
    "compare_datasets",
    "count_here",
    "estimate_performance",
    "profile",
    "profile_pair",
    "reference_layout",
]

#: Column names of the output profile (the same as the live monitor's).
_PREDICTION = "prediction"
_SCORE = "score"

_COLORS = {"ok": "#2e7d32", "none": "#2e7d32", "warning": "#f9a825", "critical": "#c62828"}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`: per-feature verdicts, quality and prediction drift.

    ``data_drift`` and ``prediction_drift`` are the decision's own frozen results (statistics,
    p-values, Benjamini-Hochberg-adjusted p-values, effect sizes, thresholds, reasons);
    ``quality`` the data-quality findings; ``reference`` and ``current`` the two profiles the
    verdicts were computed from (mergeable and serialisable with ``to_dict``).
    """

    status: str
    data_drift: DatasetDrift
    prediction_drift: DatasetDrift | None
    quality: QualityReport
    reference: DatasetProfile
    current: DatasetProfile
    reference_outputs: DatasetProfile | None = None
    current_outputs: DatasetProfile | None = None

    @property
    def drifted(self) -> bool:
        """True when the data drift verdict is a warning or critical."""
        return self.data_drift.drifted

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return self.data_drift.drifted_features

    def __getitem__(self, feature: str) -> FeatureDrift:
        return self.data_drift[feature]

    def to_dict(self) -> dict[str, Any]:
        """The report body, in the shape of a live monitor report (JSON-safe)."""
        now = time.time()
        rows = self.current.n_rows
        body: dict[str, Any] = {
            "ts": now,
            "model_name": "compare",
            "model_version": None,
            "window": {"start": None, "end": None, "seconds": None, "buckets": 0},
            "rows": rows,
            "requests": rows,
            "errors": 0,
            "rejected": 0,
            "p95_latency_ms": None,
            "status": self.status,
            "data_drift": drift_body(self.data_drift),
            "prediction_drift": (
                drift_body(self.prediction_drift) if self.prediction_drift else None
            ),
            "quality": quality_body(self.quality),
            "performance": {"reference_accuracy": None, "estimated": None, "realized": None},
            "concept_drift": {"state": "not_monitored"},
            "distributions": distributions(self.reference, self.current),
        }
        result: dict[str, Any] = jsonable(body)
        return result

    def to_frame(self) -> pd.DataFrame:
        """One row per feature (and per model output when prediction drift was computed)."""
        records: list[dict[str, Any]] = []
        parts: list[tuple[str, DatasetDrift]] = [("feature", self.data_drift)]
        if self.prediction_drift is not None:
            parts.append(("output", self.prediction_drift))
        for role, drift in parts:
            for f in drift.features:
                records.append(
                    {
                        "feature": f.feature,
                        "role": role,
                        "kind": f.kind,
                        "severity": f.severity,
                        "drifted": f.drifted,
                        "method": f.method,
                        "statistic": f.statistic,
                        "p_value": f.p_value,
                        "p_adjusted": f.p_adjusted,
                        "effect": f.effect_name,
                        "effect_size": f.effect_size,
                        "warning_threshold": f.warning_threshold,
                        "critical_threshold": f.critical_threshold,
                        "missing_rate_reference": f.missing_rate_reference,
                        "missing_rate_current": f.missing_rate_current,
                        "n_reference": f.n_reference,
                        "n_current": f.n_current,
                        "reasons": "; ".join(f.reasons),
                    }
                )
        return pd.DataFrame.from_records(records).set_index("feature")

    def to_html(self, path: str | Path | None = None) -> str:
        """The self-contained Plotly page of ``driftline report``; written to ``path`` if given."""
        # Plotly is imported here, not at module import: a notebook that only needs the
        # verdicts does not pay for it.
        from driftline.monitoring.html import render_report_html  # noqa: PLC0415 — Plotly only for the HTML page

        page = render_report_html(self.to_dict())
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def _repr_html_(self) -> str:
        """A compact table for Jupyter (the full Plotly page is :meth:`to_html`)."""
        frame = self.to_frame()[
            ["severity", "method", "statistic", "p_adjusted", "effect", "effect_size"]
        ]
        color = _COLORS.get(self.status, "#455a64")
        head = (
            f"<p><b>driftline comparison</b>: "
            f'<span style="color:{color}">{self.status}</span>, '
            f"{self.data_drift.n_drifted} of {self.data_drift.n_tested} features drifted "
            f"({self.reference.n_rows:,} reference rows, {self.current.n_rows:,} current rows)</p>"
        )
        return head + str(frame.to_html(float_format=lambda v: f"{v:.4g}"))

    def __repr__(self) -> str:
        return (
            f"Comparison(status={self.status!r}, drifted={list(self.drifted_features)!r}, "
            f"reference_rows={self.reference.n_rows}, current_rows={self.current.n_rows})"
        )


def _frame(data: Any, what: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    try:
        return pd.DataFrame(data)
    except Exception as exc:
        raise DataError(f"{what} must be a pandas DataFrame or convertible to one: {exc}") from exc


def profile(
    data: Any,
    reference: DatasetProfile | None = None,
    *,
    schema: FeatureSchema | None = None,
    seed: int = 0,
) -> DatasetProfile:
    """A mergeable profile of ``data``: a reference profile, or a window on ``reference``'s bins.

    Profiles of the same reference merge by addition (``a.merge(b)``), serialise with
    ``to_dict`` / :meth:`DatasetProfile.from_dict`, and are what :func:`compare` and the live
    monitor test.

    Parameters
    ----------
    data
        Rows, as a data frame (or anything ``pandas.DataFrame`` accepts).
    reference
        When given, the rows are counted on its bins and categories (a window); otherwise the
        profile *is* a reference, with bins at the rows' quantiles.
    schema
        Feature names and kinds; inferred from the data when None (numeric, boolean, the rest
        categorical). Ignored when ``reference`` is given.
    seed
        Seed of the profile's reservoir sample.

    Example
    -------
    >>> import driftline
    >>> rng = np.random.default_rng(0)
    >>> ref = driftline.profile(pd.DataFrame({"x": rng.normal(size=1_000)}))
    >>> day1 = driftline.profile(pd.DataFrame({"x": rng.normal(size=300)}), ref)
    >>> day2 = driftline.profile(pd.DataFrame({"x": rng.normal(size=200)}), ref)
    >>> day1.merge(day2).n_rows
    500
    """
    frame = _frame(data, "data")
    if reference is not None:
        window = reference.empty_like(seed=seed)
        window.add_frame(frame)
        return window
    chosen = schema if schema is not None else infer_schema(frame, None)
    return build_reference_profile(chosen.coerce_frame(frame), chosen, seed=seed)


def _output_schema(score: str | None) -> FeatureSchema:
    specs = [FeatureSpec(name=_PREDICTION, kind="categorical", nullable=True)]
    if score is not None:
        specs.append(FeatureSpec(name=_SCORE, kind="numeric", nullable=True))
    return FeatureSchema(features=tuple(specs))


def _outputs(frame: pd.DataFrame, prediction: str, score: str | None, what: str) -> pd.DataFrame:
    needed = [c for c in (prediction, score) if c is not None]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks the output column(s) {missing}")
    out = {_PREDICTION: frame[prediction].astype(object).map(str).where(frame[prediction].notna())}
    if score is not None:
        out[_SCORE] = pd.to_numeric(frame[score], errors="coerce")
    return pd.DataFrame(out)


# --- building the profiles: one path for data frames, files, datasets and Ray ----------------


@dataclasses.dataclass(frozen=True)
class Part:
    """One profiled table of a comparison: the features, or the model's outputs.

    ``raw`` are the source columns it reads; ``outputs`` the (prediction, score) columns when
    the part is the model's outputs, which become the output profile's ``prediction`` and
    ``score`` features.
    """

    schema: FeatureSchema
    raw: tuple[str, ...]
    outputs: tuple[str, str | None] | None = None

    @classmethod
    def features(cls, schema: FeatureSchema) -> Part:
        return cls(schema=schema, raw=tuple(schema.names))

    @classmethod
    def model_outputs(cls, prediction: str, score: str | None) -> Part:
        raw = (prediction,) if score is None else (prediction, score)
        return cls(schema=_output_schema(score), raw=raw, outputs=(prediction, score))

    def only(self, name: str) -> Part:
        """The same part profiling one feature."""
        spec = next(f for f in self.schema.features if f.name == name)
        raw = self.raw if self.outputs is not None else (name,)
        return dataclasses.replace(self, schema=FeatureSchema(features=(spec,)), raw=raw)

    def columns(self, frame: pd.DataFrame, what: str) -> dict[str, Any]:
        """The profiled columns of raw rows (:func:`driftline.profiles.profile_columns`)."""
        if self.outputs is not None:
            frame = _outputs(frame, self.outputs[0], self.outputs[1], what)
        else:
            missing = [n for n in self.schema.names if n not in frame.columns]
            if missing:
                raise DataError(f"{what} data lacks feature column(s) {missing}")
        return profile_columns(frame, self.schema)

    def count(self, profile: DatasetProfile, frames: Iterable[pd.DataFrame], what: str) -> None:
        """Count raw rows, frame by frame, into ``profile`` (in place)."""
        for frame in frames:
            profile.add_columns(self.columns(frame, what))


class Rows(Protocol):
    """Where rows come from: all at once (a data frame) or batch by batch (a dataset)."""

    def frames(self, columns: Sequence[str]) -> Iterable[pd.DataFrame]:
        """The rows of ``columns``, in pieces."""
        ...

    def read(self, columns: Sequence[str]) -> pd.DataFrame:
        """Every row of ``columns`` at once."""
        ...


@dataclasses.dataclass(frozen=True)
class _InMemory:
    frame: pd.DataFrame

    def frames(self, columns: Sequence[str]) -> Iterable[pd.DataFrame]:
        return [self.frame]

    def read(self, columns: Sequence[str]) -> pd.DataFrame:
        return self.frame


def reference_layout(part: Part, rows: Rows, *, seed: int = 0) -> DatasetProfile:
    """The reference's bins and categories, nothing counted yet (:func:`reference_bins`).

    Quantile edges need every value of a numeric feature, so they are read one column at a
    time: laying out a dataset holds one numeric column of the reference in memory, never
    the table. Category counts add up batch by batch.
    """

    def numeric(name: str) -> Any:
        single = part.only(name)
        return single.columns(rows.read(single.raw), "reference")[name]

    def categories(name: str) -> Counter[str]:
        single = part.only(name)
        total: Counter[str] = Counter()
        for frame in rows.frames(single.raw):
            total.update(category_counts(single.columns(frame, "reference")[name]))
        return total

    return reference_bins(part.schema, numeric, categories, seed=seed)


#: How a part's rows are counted into a profile: here, or on Ray (:mod:`driftline.on_ray.data`).
ProfileCounter = Callable[[DatasetProfile, Part, Rows, str], DatasetProfile]


def count_here(profile: DatasetProfile, part: Part, rows: Rows, what: str) -> DatasetProfile:
    """Count ``rows`` into ``profile`` in this process, one piece at a time."""
    part.count(profile, rows.frames(part.raw), what)
    return profile


def reference_here(part: Part, rows: Rows, *, seed: int = 0) -> DatasetProfile:
    """The reference profile of ``rows``, laid out and counted in this process in one read
    of each feature (:func:`driftline.profiles.reference_profile`): a numeric feature's
    column read once gives its edges and its counts, a categorical feature's value counts,
    added up batch by batch, its categories and its counts. It holds one numeric column at a
    time, as :func:`reference_layout` does, and equals ``count_here(reference_layout(...))``
    in every count (the reservoir samples are other uniform samples of the same rows)."""
    rows_seen: list[int] = []

    def numeric(name: str) -> Any:
        single = part.only(name)
        values = single.columns(rows.read(single.raw), "reference")[name]
        rows_seen.append(len(values))
        return values

    def counts(name: str) -> tuple[list[str | None], Any]:
        single = part.only(name)
        total: dict[str | None, int] = {}
        for frame in rows.frames(single.raw):
            names, found = value_counts(single.columns(frame, "reference")[name])
            for key, count in zip(names, found.tolist(), strict=True):
                total[key] = total.get(key, 0) + count
        rows_seen.append(sum(total.values()))
        return list(total), np.fromiter(total.values(), dtype=np.int64, count=len(total))

    profile = reference_profile(part.schema, numeric, counts, 0, seed=seed)
    profile.n_rows = rows_seen[0] if rows_seen else 0
    return profile


def profile_pair(
    part: Part,
    reference: Rows,
    current: Rows,
    *,
    seed: int,
    current_seed: int,
    count: ProfileCounter = count_here,
) -> tuple[DatasetProfile, DatasetProfile]:
    """The reference profile of ``reference`` and the window profile of ``current`` on its bins.

    The one way every comparison builds its profiles -- :func:`compare` on data frames,
    :func:`compare_datasets` on files and Parquet datasets, in batches or on Ray -- so that
    the same rows give the same counts whichever way they were read.
    """
    if count is count_here:
        ref_profile = reference_here(part, reference, seed=seed)
        layout = ref_profile
    else:
        layout = reference_layout(part, reference, seed=seed)
        ref_profile = count(layout, part, reference, "reference")
    cur_profile = count(layout.empty_like(seed=current_seed), part, current, "current")
    return ref_profile, cur_profile


def compare(
    reference: Any,
    current: Any,
    *,
    schema: FeatureSchema | None = None,
    policy: DriftPolicy | None = None,
    quality: QualityPolicy | None = None,
    prediction: str | None = None,
    score: str | None = None,
    target: str | None = None,
    seed: int = 0,
) -> Comparison:
    """Compare ``current`` rows with ``reference`` rows: data drift, quality, prediction drift.

    The live monitor's decision: per feature a test on the reference's quantile bins (KS for
    numeric, chi-square for categorical) and the missing-rate test, Benjamini-Hochberg across
    all of them, and a feature drifts only when significant AND its effect size (Wasserstein in
    reference standard deviations, total variation, missing-rate change) passes the policy's
    threshold -- so large samples do not alarm on negligible shifts.

    Parameters
    ----------
    reference, current
        Data frames (or what ``pandas.DataFrame`` accepts) with the feature columns.
        ``reference`` may also be a reference :class:`DatasetProfile` and ``current`` a window
        profile on its bins (see :func:`profile`).
    schema
        Which columns are features and their kinds; inferred from ``reference`` when None,
        leaving out the ``prediction``, ``score`` and ``target`` columns.
    policy
        Drift thresholds (:class:`driftline.drift.DriftPolicy`); its defaults when None.
    quality
        Data-quality limits (:class:`driftline.quality.QualityPolicy`); defaults when None.
    prediction, score
        Names of the columns holding the model's predicted label and score: when
        ``prediction`` is given, prediction drift is decided on them too.
    target
        A label column to leave out of the features.
    seed
        Seed of the profiles' reservoir samples (results are otherwise deterministic).

    Example
    -------
    >>> import driftline
    >>> rng = np.random.default_rng(0)
    >>> def rows(n, shift):
    ...     return pd.DataFrame({"income": rng.normal(50 + shift, 10, n),
    ...                          "region": rng.choice(["north", "south"], n)})
    >>> report = driftline.compare(rows(5_000, 0), rows(5_000, 3))
    >>> report.status, report.drifted_features
    ('critical', ('income',))
    >>> report.to_frame().loc["income", ["severity", "method"]].tolist()
    ['critical', 'ks']
    """
    if isinstance(reference, DatasetProfile):
        if not isinstance(current, DatasetProfile):
            raise DataError("a reference profile is compared with a window profile on its bins")
        if prediction is not None:
            raise DataError("prediction drift needs data frames, not profiles")
        return _result(reference, current, None, None, policy, quality)
    ref_frame = _frame(reference, "reference")
    cur_frame = _frame(current, "current")
    if schema is None:
        drop = [c for c in (prediction, score, target) if c is not None]
        features = ref_frame.drop(columns=[c for c in drop if c in ref_frame.columns])
        schema = infer_schema(features, None)
    missing = [n for n in schema.names if n not in cur_frame.columns]
    if missing:
        raise DataError(f"current data lacks feature column(s) {missing}")
    if prediction is None and score is not None:
        raise DataError("score needs prediction: name the predicted-label column too")
    ref_rows, cur_rows = _InMemory(ref_frame), _InMemory(cur_frame)
    ref_profile, cur_profile = profile_pair(
        Part.features(schema), ref_rows, cur_rows, seed=seed, current_seed=seed + 1
    )
    ref_out = cur_out = None
    if prediction is not None:
        ref_out, cur_out = profile_pair(
            Part.model_outputs(prediction, score), ref_rows, cur_rows, seed=seed, current_seed=seed
        )
    return _result(ref_profile, cur_profile, ref_out, cur_out, policy, quality)


@dataclasses.dataclass(frozen=True)
class _Batched:
    data: Dataset
    batch_rows: int

    # Strings stay in Arrow: profiles only count them (see driftline.data.dataset).
    def frames(self, columns: Sequence[str]) -> Iterable[pd.DataFrame]:
        return self.data.batches(columns, self.batch_rows, arrow_strings=True)

    def read(self, columns: Sequence[str]) -> pd.DataFrame:
        return self.data.read(columns, arrow_strings=True)


def compare_datasets(
    reference: str | Path | Dataset,
    current: str | Path | Dataset,
    *,
    schema: FeatureSchema | None = None,
    policy: DriftPolicy | None = None,
    quality: QualityPolicy | None = None,
    prediction: str | None = None,
    score: str | None = None,
    target: str | None = None,
    engine: Literal["local", "ray"] = "local",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    seed: int = 0,
) -> Comparison:
    """:func:`compare` over files or Parquet datasets larger than memory.

    ``reference`` and ``current`` are each a CSV or Parquet file, a directory of them or a
    glob. The profiles are built as :func:`compare` builds them (:func:`profile_pair`): the
    reference's quantile edges from its values, read one numeric column at a time (the only
    step that holds a whole column), its categories counted batch by batch -- with the local
    engine the same read also counts the reference (:func:`reference_here`) -- then the
    current dataset counted on those bins in record batches of ``batch_rows`` rows -- memory
    bounded by one batch. With ``engine="ray"`` the counting runs on Ray Data, one profile
    per block, merged by addition (:mod:`driftline.on_ray.data`; needs the ``ray`` extra).

    Every count (bins, missing, out-of-range, categories, unseen) and every verdict equals
    :func:`compare` on the same rows read at once; floating sums and moments agree up to
    rounding (they are added in another order), and the reservoir samples are other uniform
    samples of the same rows (their keys are drawn batch by batch). Nothing the verdicts read
    depends on the samples.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> for name, shift in (("ref", 0.0), ("cur", 3.0)):
    ...     for part in range(2):
    ...         frame = pd.DataFrame({"income": rng.normal(50 + shift, 10, 3_000)})
    ...         frame.to_parquet(folder / f"{name}-{part}.parquet")
    >>> report = compare_datasets(folder / "ref-*.parquet", folder / "cur-*.parquet",
    ...                           batch_rows=1_000)
    >>> report.status, report.reference.n_rows, report.current.n_rows
    ('critical', 6000, 6000)
    """
    ref_data = reference if isinstance(reference, Dataset) else open_dataset(reference)
    cur_data = current if isinstance(current, Dataset) else open_dataset(current)
    if prediction is None and score is not None:
        raise DataError("score needs prediction: name the predicted-label column too")
    if schema is None:
        drop = [c for c in (prediction, score, target) if c is not None]
        schema = ref_data.infer_schema(exclude=drop)
    ref_data.check_columns(schema.names, "reference")
    cur_data.check_columns(schema.names, "current")
    if engine == "ray":
        from driftline.on_ray.data import count_on_ray  # noqa: PLC0415 — the ray extra

        count: ProfileCounter = count_on_ray
    elif engine == "local":
        count = count_here
    else:
        raise DataError(f"engine must be 'local' or 'ray', got {engine!r}")
    ref_rows, cur_rows = _Batched(ref_data, batch_rows), _Batched(cur_data, batch_rows)
    ref_profile, cur_profile = profile_pair(
        Part.features(schema), ref_rows, cur_rows, seed=seed, current_seed=seed + 1, count=count
    )
    ref_out = cur_out = None
    if prediction is not None:
        part = Part.model_outputs(prediction, score)
        ref_data.check_columns(part.raw, "reference")
        cur_data.check_columns(part.raw, "current")
        ref_out, cur_out = profile_pair(
            part, ref_rows, cur_rows, seed=seed, current_seed=seed, count=count
        )
    return _result(ref_profile, cur_profile, ref_out, cur_out, policy, quality)


def _result(
    reference: DatasetProfile,
    current: DatasetProfile,
    reference_outputs: DatasetProfile | None,
    current_outputs: DatasetProfile | None,
    policy: DriftPolicy | None,
    quality: QualityPolicy | None,
) -> Comparison:
    verdicts = assess(
        reference,
        current,
        reference_outputs=reference_outputs,
        current_outputs=current_outputs,
        drift_policy=policy,
        quality_policy=quality,
    )
    body: Mapping[str, Any] = {
        "data_drift": {"severity": verdicts.data_drift.severity},
        "prediction_drift": (
            {"severity": verdicts.prediction_drift.severity} if verdicts.prediction_drift else None
        ),
        "quality": {"severity": verdicts.quality.severity},
        "concept_drift": {},
    }
    return Comparison(
        status=overall_status(body),
        data_drift=verdicts.data_drift,
        prediction_drift=verdicts.prediction_drift,
        quality=verdicts.quality,
        reference=reference,
        current=current,
        reference_outputs=reference_outputs,
        current_outputs=current_outputs,
    )


def estimate_performance(
    reference_labels: Sequence[Any] | np.ndarray,
    reference_proba: np.ndarray,
    current_proba: np.ndarray,
    *,
    classes: Sequence[Any],
    confidence: float = 0.95,
) -> PerformanceEstimate:
    """Accuracy, macro F1 and ROC AUC of ``current`` predictions, without their labels (CBPE).

    Calibrates the model's probabilities on labelled reference rows (isotonic, per class), then
    takes the expected value of each metric under the calibrated probabilities of the current
    rows, with a confidence band. It holds under covariate shift as long as the calibration
    does; it cannot see concept drift (the same inputs meaning other labels).

    Parameters
    ----------
    reference_labels
        True labels of the reference rows.
    reference_proba, current_proba
        The model's class probabilities, one column per class in the order of ``classes``.
    classes
        The model's classes.
    confidence
        Coverage of the band, in (0, 1).

    Example
    -------
    >>> import driftline
    >>> rng = np.random.default_rng(1)
    >>> def scored(n):
    ...     p = rng.beta(2, 2, n)
    ...     return (rng.random(n) < p).astype(int), np.column_stack([1 - p, p])
    >>> y_ref, p_ref = scored(5_000)
    >>> y_now, p_now = scored(2_000)
    >>> est = driftline.estimate_performance(y_ref, p_ref, p_now, classes=[0, 1])
    >>> realized = float(np.mean(p_now.argmax(axis=1) == y_now))
    >>> est.accuracy_lower <= realized <= est.accuracy_upper
    True

    References
    ----------
    NannyML, "Confidence-based performance estimation" (CBPE); Zadrozny and Elkan (2002).
    """
    calibrator = Calibrator().fit(reference_labels, np.asarray(reference_proba), classes)
    sketch = calibrator.sketch(np.asarray(current_proba, dtype=np.float64))
    if sketch.n == 0:
        raise DataError("current_proba has no rows to estimate on")
    return estimate(sketch, confidence=confidence)
