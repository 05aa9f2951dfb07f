"""The model registry, on MLflow.

Versions are MLflow model versions (immutable integers) whose artifacts are a
:class:`~driftline.models.bundle.ModelBundle` folder. The aliases ``champion`` and
``challenger`` say what serves. MLflow keeps only where an alias points now, so every move is
also appended to our store's ``alias_history`` (who, when, why) and to the audit log; rollback
is then one more move, to the version the history says served before.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.errors import ModelNotFoundError, RegistryError
from driftline.models.bundle import ModelBundle
from driftline.store import Store, queries

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["CHALLENGER", "CHAMPION", "Registry", "VersionInfo"]

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
EXPERIMENT = "driftline"
BUNDLE_PATH = "bundle"
_READY_MARK = ".complete"


@dataclass(frozen=True)
class VersionInfo:
    """What the registry knows of one version."""

    version: int
    created: float
    run_id: str
    kind: str
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Registry:
    """Register, find, alias and load model versions of one registered model."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        registry_uri: str,
        model_name: str,
        store: Store,
        cache_dir: Path,
        artifact_dir: Path | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.model_name = model_name
        self.store = store
        self.cache_dir = cache_dir
        self.artifact_dir = artifact_dir
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, store: Store) -> Registry:
        return cls(
            tracking_uri=settings.mlflow_tracking_uri,
            registry_uri=settings.mlflow_registry_uri,
            model_name=settings.model_name,
            store=store,
            cache_dir=settings.cache_dir,
            artifact_dir=settings.artifact_dir,
        )

    # --- MLflow plumbing ------------------------------------------------------------------------

    @property
    def client(self) -> MlflowClient:
        with self._lock:
            if self._client is None:
                _quiet_mlflow()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    from mlflow import MlflowClient  # noqa: PLC0415 — MLflow (seconds to import) on first use

                    _quiet_mlflow()  # mlflow sets its own levels on import
                    self._client = MlflowClient(
                        tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
                    )
            return self._client

    def _is_local(self) -> bool:
        return self.tracking_uri.startswith(("sqlite:", "file:", "/")) or "://" not in (
            self.tracking_uri
        )

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = None
        if self._is_local() and self.artifact_dir is not None:
            self.artifact_dir.mkdir(parents=True, exist_ok=True)
            location = self.artifact_dir.resolve().as_uri()
        try:
            return str(self.client.create_experiment(EXPERIMENT, artifact_location=location))
        except Exception:  # created concurrently by another process
            experiment = self.client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException  # noqa: PLC0415 — MLflow (seconds to import) on first use

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            try:
                self.client.create_registered_model(
                    self.model_name, description="Managed by driftline."
                )
            except MlflowException:
                self.client.get_registered_model(self.model_name)

    # --- registering ------------------------------------------------------------------------------

    def register(
        self,
        bundle: ModelBundle,
        *,
        actor: str = "cli",
        reason: str = "trained",
        tags: dict[str, str] | None = None,
        champion_if_first: bool = True,
        artifacts: dict[str, Path] | None = None,
    ) -> int:
        """Log ``bundle`` as a new version; the first version of a model becomes champion.

        ``artifacts`` maps an artifact folder to a local file logged with the version's run
        (the closed loop logs the training-data snapshot as ``training-data``).
        """
        experiment_id = self._experiment_id()
        self._ensure_registered_model()
        all_tags = {
            "driftline.kind": bundle.kind,
            "driftline.task": bundle.schema.task,
            "driftline.target": str(bundle.schema.target),
            **{f"driftline.{k}": str(v) for k, v in (tags or {}).items()},
        }
        if "data_hash" in bundle.meta:
            all_tags["driftline.data_hash"] = str(bundle.meta["data_hash"])
        run = self.client.create_run(experiment_id, tags=all_tags, run_name=f"{bundle.kind}")
        run_id = run.info.run_id
        try:
            for key, value in bundle.metrics.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.client.log_metric(run_id, key, float(value))
            for key in ("seed", "n_train", "n_holdout"):
                if key in bundle.meta:
                    self.client.log_param(run_id, key, str(bundle.meta[key]))
            self.client.log_param(run_id, "kind", bundle.kind)
            with tempfile.TemporaryDirectory(prefix="driftline-bundle-") as tmp:
                folder = bundle.save(Path(tmp) / BUNDLE_PATH)
                self.client.log_artifacts(run_id, str(folder), BUNDLE_PATH)
            for artifact_path, local in (artifacts or {}).items():
                self.client.log_artifact(run_id, str(local), artifact_path)
            self.client.set_terminated(run_id)
        except Exception as exc:
            self.client.set_terminated(run_id, status="FAILED")
            raise RegistryError(f"could not log the model to MLflow: {exc}") from exc
        source = f"{run.info.artifact_uri}/{BUNDLE_PATH}"
        mv = self.client.create_model_version(
            self.model_name, source, run_id, tags=all_tags, description=reason
        )
        version = int(mv.version)
        bundle.version = version
        self._audit(
            "model_registered",
            f"registered version {version} ({bundle.kind})",
            actor=actor,
            version=version,
            details={"reason": reason, "metrics": _scalar_metrics(bundle.metrics)},
        )
        if champion_if_first and self.alias(CHAMPION) is None:
            self.set_alias(CHAMPION, version, actor=actor, reason="first version")
        return version

    # --- reading ------------------------------------------------------------------------------

    def aliases(self) -> dict[str, int]:
        """Current alias → version (empty when the model is not registered yet)."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415 — MLflow (seconds to import) on first use

        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException:
            return {}
        return {str(a): int(v) for a, v in (model.aliases or {}).items()}

    def alias(self, name: str) -> int | None:
        return self.aliases().get(name)

    def versions(self) -> list[VersionInfo]:
        """Every version, newest first, with its aliases, metrics and tags."""
        aliases = self.aliases()
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        found = self.client.search_model_versions(f"name='{self.model_name}'")
        out: list[VersionInfo] = []
        for mv in found:
            version = int(mv.version)
            metrics: dict[str, float] = {}
            try:
                metrics = dict(self.client.get_run(str(mv.run_id)).data.metrics)
            except Exception:
                log.debug("no run data for version %s", version)
            out.append(
                VersionInfo(
                    version=version,
                    created=float(mv.creation_timestamp) / 1000.0,
                    run_id=str(mv.run_id),
                    kind=str((mv.tags or {}).get("driftline.kind", "unknown")),
                    aliases=tuple(sorted(by_version.get(version, []))),
                    metrics=metrics,
                    tags=dict(mv.tags or {}),
                )
            )
        return sorted(out, key=lambda v: v.version, reverse=True)

    def _check_version(self, version: int) -> None:
        from mlflow.exceptions import MlflowException  # noqa: PLC0415 — MLflow (seconds to import) on first use

        try:
            self.client.get_model_version(self.model_name, str(version))
        except MlflowException as exc:
            raise ModelNotFoundError(f"model '{self.model_name}' has no version {version}") from exc

    def load(self, version: int) -> ModelBundle:
        """Load a version's bundle (downloaded once into the cache)."""
        self._check_version(version)
        folder = self.cache_dir / self.model_name / str(version)
        if not (folder / _READY_MARK).exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            # One download per version at a time, across threads and worker processes that
            # share the cache: a second loader waits, then finds the folder ready.
            with open(folder.parent / f"{version}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (folder / _READY_MARK).exists():
                    self._download(version, folder)
        return ModelBundle.load(folder, version=version)

    def _download(self, version: int, folder: Path) -> None:
        mv = self.client.get_model_version(self.model_name, str(version))
        staging = Path(tempfile.mkdtemp(prefix=f"v{version}-", dir=_mkdir(self.cache_dir)))
        try:
            path = self.client.download_artifacts(str(mv.run_id), BUNDLE_PATH, str(staging))
            if folder.exists():  # left half-made by a crash
                shutil.rmtree(folder, ignore_errors=True)
            Path(path).rename(folder)
            (folder / _READY_MARK).touch()
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def load_alias(self, alias: str) -> ModelBundle | None:
        version = self.alias(alias)
        return None if version is None else self.load(version)

    # --- moving aliases -------------------------------------------------------------------------

    def set_alias(self, alias: str, version: int, *, actor: str, reason: str) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before."""
        if alias not in ALIASES:
            raise RegistryError(f"alias must be one of {ALIASES}, got {alias!r}")
        self._check_version(version)
        before = self.alias(alias)
        self.client.set_registered_model_alias(self.model_name, alias, str(version))
        self._record_move(alias, before, version, actor=actor, reason=reason)
        return before

    def remove_alias(self, alias: str, *, actor: str, reason: str) -> int | None:
        before = self.alias(alias)
        if before is None:
            return None
        self.client.delete_registered_model_alias(self.model_name, alias)
        self._record_move(alias, before, None, actor=actor, reason=reason)
        return before

    def promote(
        self, version: int, *, actor: str = "cli", reason: str = "manual promotion"
    ) -> int | None:
        """Make ``version`` the champion; clears ``challenger`` if it pointed there."""
        before = self.set_alias(CHAMPION, version, actor=actor, reason=reason)
        if self.alias(CHALLENGER) == version:
            self.remove_alias(CHALLENGER, actor=actor, reason=f"promoted to {CHAMPION}")
        return before

    def previous_champion(self) -> int | None:
        """The version that served before the current champion, from the alias history."""
        current = self.alias(CHAMPION)
        with self.store.sessions() as session:
            moves = queries.alias_history(
                session=session, model_name=self.model_name, alias=CHAMPION, limit=1_000
            )
        for move in moves:
            if move.to_version == current and move.from_version is not None:
                return move.from_version
        return None

    def rollback(
        self, to: int | None = None, *, actor: str = "cli", reason: str = "manual rollback"
    ) -> tuple[int | None, int]:
        """Move ``champion`` back (to ``to``, or to the version that served before).

        Returns ``(from_version, to_version)``.
        """
        target = to if to is not None else self.previous_champion()
        if target is None:
            raise RegistryError(
                "no earlier champion in the alias history to roll back to; pass --to VERSION"
            )
        current = self.alias(CHAMPION)
        if current == target:
            raise RegistryError(f"version {target} is already the champion")
        self.set_alias(CHAMPION, target, actor=actor, reason=f"rollback: {reason}")
        self._audit(
            "rollback",
            f"champion rolled back from {current} to {target}: {reason}",
            actor=actor,
            version=target,
            details={"from_version": current, "to_version": target, "reason": reason},
        )
        return current, target

    def history(self, alias: str | None = None, limit: int = 100) -> list[queries.AliasMoveRow]:
        with self.store.sessions() as session:
            return queries.alias_history(
                session=session, model_name=self.model_name, alias=alias, limit=limit
            )

    # --- bookkeeping ----------------------------------------------------------------------------

    def _record_move(
        self, alias: str, before: int | None, after: int | None, *, actor: str, reason: str
    ) -> None:
        now = time.time()
        with self.store.sessions.begin() as session:
            queries.record_alias_move(
                session=session,
                model_name=self.model_name,
                alias=alias,
                from_version=before,
                to_version=after,
                actor=actor,
                reason=reason,
                ts=now,
            )
            queries.add_audit(
                session=session,
                kind="alias_moved",
                actor=actor,
                model_version=after,
                message=f"{alias}: {before} → {after} ({reason})",
                details={
                    "alias": alias,
                    "from_version": before,
                    "to_version": after,
                    "reason": reason,
                },
                ts=now,
            )

    def _audit(
        self,
        kind: str,
        message: str,
        *,
        actor: str,
        version: int | None,
        details: dict[str, Any],
    ) -> None:
        self.store.audit(kind, message, actor=actor, version=version, details=details)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | None)}
