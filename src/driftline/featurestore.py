"""Features from a Feast feature store: point-in-time training sets and online lookups.

Feast is an extra (``pip install 'driftline[feast]'``) and is imported only here, only when a
feature repo is used. A model trained from Feast carries a :class:`FeastSpec` in its metadata
(``meta["feast"]``): the entity join keys and, per feature view, the features it reads. Serving
fetches exactly those with ``get_online_features``; training built them with
``get_historical_features`` (point-in-time correct: each label row gets the feature values
as they were at its event timestamp).

Outcomes of an online lookup, per row: every feature found (values returned), or an entity
the online store does not know (:class:`~driftline.errors.EntityNotFoundError`, naming the
entity and the feature views that miss it). Any failure of the store itself is a
:class:`~driftline.errors.FeatureStoreUnavailableError`: never a row on half its features.

>>> spec = FeastSpec(entities=("customer_id",), views={"customer_stats": ("txn_count", "avg")})
>>> spec.refs
('customer_stats:txn_count', 'customer_stats:avg')
>>> FeastSpec.from_meta(spec.to_meta()) == spec
True
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftline.errors import (
    ConfigurationError,
    DataError,
    EntityNotFoundError,
    FeatureStoreUnavailableError,
    ValidationError,
)

__all__ = [
    "META_KEY",
    "FeastSpec",
    "FeatureRepo",
    "TrainingTable",
    "check_entities",
    "import_feast",
    "merged_features",
    "training_table",
]

#: Where a model's Feast declaration lives in its bundle metadata.
META_KEY = "feast"
#: The timestamp column of an entity table, as Feast names it.
EVENT_TIMESTAMP = "event_timestamp"

# Feast's FieldStatus values (feast.protos.feast.serving.ServingService_pb2), by number so this
# module imports no Feast at load time.
_NOT_FOUND = 3


@dataclass(frozen=True)
class FeastSpec:
    """Which model features come from which Feast feature view, and the entity keys that
    find them.

    Parameters
    ----------
    entities
        Join keys of the entities (``customer_id``), as requests name them.
    views
        Feature view name → the features of that view the model reads, in order.
    project
        The Feast project the model was trained from (informational).
    """

    entities: tuple[str, ...]
    views: Mapping[str, tuple[str, ...]]
    project: str | None = None
    #: Python type each entity key must have (``int`` or ``str``), from the feature views.
    key_types: Mapping[str, str] = field(default_factory=dict)

    @property
    def refs(self) -> tuple[str, ...]:
        """Feast feature references, ``view:feature``."""
        return tuple(f"{view}:{name}" for view, names in self.views.items() for name in names)

    @property
    def features(self) -> tuple[str, ...]:
        """The model feature names the lookup fills (Feast's short names)."""
        return tuple(name for names in self.views.values() for name in names)

    def to_meta(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "entities": list(self.entities),
            "feature_views": {view: list(names) for view, names in self.views.items()},
            "key_types": dict(self.key_types),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> FeastSpec:
        return cls(
            entities=tuple(meta["entities"]),
            views={str(v): tuple(names) for v, names in meta["feature_views"].items()},
            project=meta.get("project"),
            key_types=dict(meta.get("key_types") or {}),
        )

    @classmethod
    def of_bundle_meta(cls, meta: Mapping[str, Any]) -> FeastSpec | None:
        """The spec a model bundle declares, or ``None`` for a model not trained from Feast."""
        raw = meta.get(META_KEY)
        return cls.from_meta(raw) if raw else None


def check_entities(
    spec: FeastSpec, entities: Mapping[str, Any], loc: Sequence[str | int]
) -> dict[str, Any]:
    """The entity keys of one request, checked against the model's declaration.

    Raises :class:`~driftline.errors.ValidationError` naming every missing, unknown or
    mistyped key.

    >>> spec = FeastSpec(("customer_id",), {"v": ("x",)}, key_types={"customer_id": "int"})
    >>> check_entities(spec, {"customer_id": 42}, ("body", "entities"))
    {'customer_id': 42}
    >>> try:
    ...     check_entities(spec, {"customer": 42}, ("body", "entities"))
    ... except ValidationError as exc:
    ...     [e["loc"][-1] for e in exc.errors]
    ['customer_id', 'customer']
    """
    errors: list[dict[str, Any]] = []
    for key in spec.entities:
        if key not in entities:
            errors.append(
                {
                    "loc": [*loc, key],
                    "msg": f"entity key {key!r} is required by this model's Feast features",
                    "type": "missing",
                }
            )
    for key, value in entities.items():
        if key not in spec.entities:
            errors.append(
                {
                    "loc": [*loc, key],
                    "msg": f"unknown entity key {key!r}; this model looks features up by "
                    f"{', '.join(spec.entities)}",
                    "type": "extra_forbidden",
                    "input": value,
                }
            )
            continue
        want = spec.key_types.get(key)
        ok = (
            isinstance(value, str)
            if want == "str"
            else isinstance(value, int) and not isinstance(value, bool)
            if want == "int"
            else isinstance(value, str | int) and not isinstance(value, bool)
        )
        if not ok:
            kind = "a string" if want == "str" else "an integer"
            errors.append(
                {
                    "loc": [*loc, key],
                    "msg": f"entity key {key!r} must be {kind}",
                    "type": "entity_type",
                    "input": value,
                }
            )
    if errors:
        raise ValidationError(errors)
    return {key: entities[key] for key in spec.entities}


def _key_type(dtype: Any) -> str | None:
    name = str(dtype).lower()
    if "int" in name:
        return "int"
    if "string" in name or "str" in name:
        return "str"
    return None


def _is_outage(exc: BaseException) -> bool:
    """Whether an exception from Feast means its online store could not be reached."""
    try:
        import redis.exceptions  # noqa: PLC0415 — Feast's online store may not be Redis
    except ImportError:  # pragma: no cover - Feast without its Redis extra
        return isinstance(exc, OSError | TimeoutError)
    return isinstance(exc, OSError | TimeoutError | redis.exceptions.RedisError)


#: Environment variables ``feast.metrics`` sets on import when they are unset.
_FEAST_ENV = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def import_feast() -> Any:
    """Import Feast without letting it switch this process's Prometheus client to
    multiprocess mode: ``feast.metrics`` points ``PROMETHEUS_MULTIPROC_DIR`` at a temporary
    folder of its own when unset, which would make driftline's ``/metrics`` serve Feast's
    files instead of driftline's metrics (and leak into child processes). The variables are
    put back as they were."""
    saved = {name: os.environ.get(name) for name in _FEAST_ENV}
    try:
        import feast  # noqa: PLC0415 — optional extra, imported under the guard
        import feast.metrics  # noqa: PLC0415 — imported here, under the guard, once
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return feast


class FeatureRepo:
    """One Feast feature repository (a folder with ``feature_store.yaml``).

    The Feast ``FeatureStore`` is built on first use (importing Feast takes seconds) and then
    reused; its Redis client is thread-safe. Every method blocks: the service calls them on a
    worker thread.
    """

    def __init__(self, repo_path: Path | str) -> None:
        self.repo_path = Path(repo_path)
        self._store: Any = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The ``feast.FeatureStore`` of this repo."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._open()
        return self._store

    def _open(self) -> Any:
        try:
            FeatureStore = import_feast().FeatureStore  # noqa: N806 - a class
        except ImportError as exc:
            raise ConfigurationError(
                "Feast is not installed: pip install 'driftline[feast]'"
            ) from exc
        if not (self.repo_path / "feature_store.yaml").is_file():
            raise ConfigurationError(
                f"no feature_store.yaml in {self.repo_path} (DRIFTLINE_FEAST_REPO / --feast-repo "
                "must point at a Feast feature repository)"
            )
        try:
            return FeatureStore(repo_path=str(self.repo_path))
        except Exception as exc:
            raise ConfigurationError(
                f"cannot open the Feast repository {self.repo_path}: {exc}"
            ) from exc

    @property
    def project(self) -> str:
        return str(self.store.project)

    # --- training ---------------------------------------------------------------------------

    def spec_for(self, entities: Sequence[str], views: Sequence[str] = ()) -> FeastSpec:
        """The features to train on: every feature of ``views`` (default: every feature view
        joined on exactly these entity keys). Raises naming what the registry lacks."""
        store = self.store
        known = {fv.name: fv for fv in store.list_feature_views()}
        if views:
            missing = [v for v in views if v not in known]
            if missing:
                raise DataError(
                    f"feature view(s) {', '.join(missing)} not in the Feast registry of "
                    f"{self.repo_path} (known: {', '.join(sorted(known)) or 'none'}; "
                    "did `feast apply` run?)"
                )
            chosen = [known[v] for v in views]
        else:
            chosen = [
                fv for fv in known.values() if {c.name for c in fv.entity_columns} == set(entities)
            ]
            if not chosen:
                raise DataError(
                    f"no feature view in {self.repo_path} is keyed by {', '.join(entities)} "
                    f"(known: {', '.join(sorted(known)) or 'none'}; did `feast apply` run?)"
                )
        key_types: dict[str, str] = {}
        for fv in chosen:
            keys = {c.name: c for c in fv.entity_columns}
            absent = [e for e in entities if e not in keys]
            if absent or set(keys) - set(entities):
                raise DataError(
                    f"feature view {fv.name!r} is keyed by {', '.join(sorted(keys))}, "
                    f"not by {', '.join(entities)}"
                )
            for name, column in keys.items():
                kind = _key_type(column.dtype)
                if kind is not None:
                    key_types[name] = kind
        spec = FeastSpec(
            entities=tuple(entities),
            views={fv.name: tuple(f.name for f in fv.features) for fv in chosen},
            project=self.project,
            key_types=key_types,
        )
        clash = {f for f in spec.features if spec.features.count(f) > 1}
        if clash:
            raise DataError(
                f"feature name(s) {', '.join(sorted(clash))} appear in more than one feature "
                "view; pick views with --feature-view"
            )
        return spec

    def training_frame(
        self, spec: FeastSpec, entity_frame: pd.DataFrame, *, timestamp: str = EVENT_TIMESTAMP
    ) -> pd.DataFrame:
        """The entity table joined point-in-time with the spec's features
        (``get_historical_features``): each row gets the latest values at or before its
        timestamp, within each view's TTL. Rows keep the entity table's order."""
        missing = [c for c in (*spec.entities, timestamp) if c not in entity_frame.columns]
        if missing:
            raise DataError(
                f"the entity table lacks column(s) {', '.join(missing)} (it needs the entity "
                f"keys and an event timestamp column)"
            )
        frame = entity_frame.reset_index(drop=True).copy()
        frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True)
        if timestamp != EVENT_TIMESTAMP:
            frame = frame.rename(columns={timestamp: EVENT_TIMESTAMP})
        order = "__driftline_row"
        frame[order] = range(len(frame))
        job = self.store.get_historical_features(entity_df=frame, features=list(spec.refs))
        out = job.to_df().sort_values(order).drop(columns=[order]).reset_index(drop=True)
        return pd.DataFrame(out)

    # --- serving ----------------------------------------------------------------------------

    def fetch(
        self, spec: FeastSpec, rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any] | EntityNotFoundError]:
        """Online features of each entity row: a dict of feature values, or the
        :class:`EntityNotFoundError` of a row whose entity a feature view lacks.

        Raises :class:`FeatureStoreUnavailableError` when the online store fails (the whole
        call: no row is answered from a partial lookup).
        """
        if not rows:
            return []
        try:
            response = self.store.get_online_features(
                features=list(spec.refs), entity_rows=[dict(r) for r in rows]
            )
            values = response.to_dict()
        except ConfigurationError:
            raise
        except Exception as exc:
            what = "cannot be reached" if _is_outage(exc) else "failed"
            raise FeatureStoreUnavailableError(
                f"the Feast online store {what}: {type(exc).__name__}: {exc}"
            ) from exc
        # Feast marks an entity it has no row for as NOT_FOUND in some online stores; Redis
        # answers PRESENT with an empty value and no event timestamp. Either way, a view whose
        # every feature came back so has no row for the entity.
        found: dict[str, list[bool]] = {}
        statuses: dict[str, list[int]] = {}
        for name, vector in zip(
            response.proto.metadata.feature_names.val, response.proto.results, strict=True
        ):
            statuses[name] = list(vector.statuses)
            found[name] = [
                status != _NOT_FOUND and (value.WhichOneof("val") is not None or ts.seconds > 0)
                for status, value, ts in zip(
                    vector.statuses, vector.values, vector.event_timestamps, strict=True
                )
            ]
        out: list[dict[str, Any] | EntityNotFoundError] = []
        for i, row in enumerate(rows):
            missing_views = [
                view
                for view, names in spec.views.items()
                if not any(found[n][i] for n in names if n in found)
            ]
            if missing_views:
                keys = ", ".join(f"{k}={row[k]!r}" for k in spec.entities)
                out.append(
                    EntityNotFoundError(
                        f"entity {keys} not found in the Feast online store "
                        f"(feature view(s) {', '.join(missing_views)})",
                        entities=dict(row),
                        views=missing_views,
                    )
                )
                continue
            # A feature the row lacks (a null, or a value older than the view's TTL) comes
            # back as None: the schema refuses it unless that feature may be missing.
            record = {name: values[name][i] for name in spec.features}
            out.append(record)
        return out


def merged_features(fetched: Mapping[str, Any], inline: Mapping[str, Any]) -> dict[str, Any]:
    """Fetched features overlaid by the ones sent inline (inline wins).

    >>> merged_features({"a": 1, "b": 2}, {"b": 3})
    {'a': 1, 'b': 3}
    """
    return {**fetched, **inline}


@dataclass(frozen=True)
class TrainingTable:
    """A training table built from Feast, and what it took."""

    frame: pd.DataFrame
    spec: FeastSpec
    #: Label rows dropped because a feature view had no value for their entity at their time.
    dropped: int


def training_table(
    repo: FeatureRepo,
    entity_frame: pd.DataFrame,
    *,
    entities: Sequence[str],
    views: Sequence[str] = (),
    timestamp: str = EVENT_TIMESTAMP,
) -> TrainingTable:
    """The training table of a model whose features come from Feast.

    ``entity_frame`` holds the entity keys, an event timestamp and the label (plus any
    features the caller will send inline at serving time). Feast joins each row with the
    features as they were at its timestamp; rows lacking a fetched feature (the entity had no
    value yet, or only one older than the view's TTL) are dropped, since serving would answer
    them 404. The entity keys and the timestamp are not model features.
    """
    if not entities:
        raise DataError("name the entity join key(s) the features are looked up by (--entity)")
    spec = repo.spec_for(entities, views)
    overlap = [f for f in spec.features if f in entity_frame.columns]
    if overlap:
        raise DataError(
            f"the entity table already has column(s) {', '.join(overlap)} that Feast would "
            "fetch; drop them or pick other feature views"
        )
    joined = repo.training_frame(spec, entity_frame, timestamp=timestamp)
    complete = joined.dropna(subset=list(spec.features))
    dropped = len(joined) - len(complete)
    if complete.empty:
        raise DataError(
            f"no row of the entity table found its features in Feast's offline store "
            f"(feature views {', '.join(spec.views)}): are the timestamps inside the data?"
        )
    frame = complete.drop(columns=[*spec.entities, EVENT_TIMESTAMP]).reset_index(drop=True)
    return TrainingTable(frame=frame, spec=spec, dropped=dropped)
