"""Versioned programs in the MLflow model registry, with a ``champion`` alias, promotion and rollback.

Each version is an MLflow pyfunc model (see :mod:`flywheel.registry.pyfunc`) named
``<prefix><program>`` (``flywheel-rag``), whose artifact is the program's DSPy state (instructions and
demos). Metrics and optimizer settings are attached as version tags (``metric.<name>``,
``param.<name>``); ``status`` is ``candidate``, ``champion`` or ``retired``. Promotions append to a
``champion_history`` tag on the registered model, which is what ``rollback`` walks back.
"""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.errors import NotFoundError
from flywheel.registry.tracking import use_tracking

CHAMPION = "champion"
STATE_FILE = "program_state.json"


@dataclass
class ProgramVersion:
    name: str
    version: int
    aliases: list[str]
    status: str
    metrics: dict[str, float]
    params: dict[str, str]
    run_id: str | None
    created_at: int
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def artifact_path(self) -> str:
        """The model's path inside its run (from the version's ``runs:/<run>/<path>`` source)."""
        prefix = f"runs:/{self.run_id}/"
        return self.source[len(prefix) :] if self.source.startswith(prefix) else "program"

    @property
    def is_champion(self) -> bool:
        return CHAMPION in self.aliases

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": self.aliases,
            "status": self.status,
            "metrics": self.metrics,
            "params": self.params,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "description": self.description,
        }


def _status(tags: dict[str, str], aliases: list[str]) -> str:
    """The champion alias decides who is champion: a promote or rollback moves it first and tags the
    versions after (separate writes), so a process killed in between leaves the tags behind the alias."""
    if CHAMPION in aliases:
        return CHAMPION
    status = tags.get("status", "candidate")
    return "retired" if status == CHAMPION else status


def _version(name: str, mv: Any) -> ProgramVersion:
    tags = dict(mv.tags or {})
    metrics = {k[7:]: float(v) for k, v in tags.items() if k.startswith("metric.")}
    params = {k[6:]: v for k, v in tags.items() if k.startswith("param.")}
    aliases = sorted(getattr(mv, "aliases", []) or [])
    return ProgramVersion(
        name,
        int(mv.version),
        aliases,
        _status(tags, aliases),
        metrics,
        params,
        mv.run_id,
        int(mv.creation_timestamp or 0),
        mv.description or "",
        tags,
        mv.source or "",
    )


class ProgramRegistry:
    """Register, list, load, promote and roll back program versions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._states: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def model_name(self, name: str) -> str:
        return f"{self.settings.tracking.model_prefix}{name}"

    def model_uri(self, name: str, ref: str | int = CHAMPION) -> str:
        ref = str(ref)
        return f"models:/{self.model_name(name)}/{ref}" if ref.isdigit() else f"models:/{self.model_name(name)}@{ref}"

    @property
    def client(self) -> Any:
        return use_tracking(self.settings)

    # --- writing ---------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        program: Any,
        *,
        metrics: dict[str, float | None] | None = None,
        params: dict[str, Any] | None = None,
        description: str = "",
        run_id: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> ProgramVersion:
        """Log ``program`` as a pyfunc model and register it as a new (candidate) version."""
        # Lazy (start-up time): only this path needs MLflow.
        import mlflow

        # Lazy (start-up time): only this path needs MLflow and pandas.
        from flywheel.registry.pyfunc import save_program_model

        client = self.client
        # One run may register several versions (the unoptimized baseline and the candidate): each
        # gets its own artifact path, or the second would overwrite the first's files.
        artifact_path = f"programs/{name}-{uuid.uuid4().hex[:12]}"
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "program"
            save_program_model(model_dir, name, program, self.settings, config=config)
            active = mlflow.active_run()
            if run_id is None and active is None:
                with mlflow.start_run(run_name=f"register-{name}") as run:
                    mlflow.log_artifacts(str(model_dir), artifact_path=artifact_path)
                    run_id = run.info.run_id
            else:
                run_id = run_id or active.info.run_id
                client.log_artifacts(run_id, str(model_dir), artifact_path=artifact_path)
        model = self.model_name(name)
        try:
            client.get_registered_model(model)
        except Exception:
            client.create_registered_model(model, description=f"Flywheel program {name!r}")
        mv = client.create_model_version(
            model, f"runs:/{run_id}/{artifact_path}", run_id=run_id, description=description
        )
        client.set_model_version_tag(model, mv.version, "status", "candidate")
        for key, value in (metrics or {}).items():
            if value is not None:
                client.set_model_version_tag(model, mv.version, f"metric.{key}", f"{float(value):.6f}")
        for key, value in (params or {}).items():
            client.set_model_version_tag(model, mv.version, f"param.{key}", str(value)[:4000])
        return self.get(name, int(mv.version))  # type: ignore[return-value]

    def promote(self, name: str, version: int, *, reason: str = "") -> ProgramVersion:
        """Make ``version`` the champion (the previous one is remembered for rollback)."""
        client = self.client
        model = self.model_name(name)
        target = self.require(name, version)
        previous = self.get(name, CHAMPION)
        if previous is not None and previous.version == target.version:
            return target
        history = self._history(name)
        history.append(target.version)
        client.set_registered_model_tag(model, "champion_history", json.dumps(history[-50:]))
        client.set_registered_model_alias(model, CHAMPION, str(target.version))
        client.set_model_version_tag(model, str(target.version), "status", "champion")
        if reason:
            client.set_model_version_tag(model, str(target.version), "promotion_reason", reason[:4000])
        if previous is not None:
            client.set_model_version_tag(model, str(previous.version), "status", "retired")
        return self.require(name, target.version)

    def rollback(self, name: str) -> ProgramVersion:
        """Give the champion alias back to the version that held it before the current one."""
        client = self.client
        model = self.model_name(name)
        current = self.get(name, CHAMPION)
        history = [v for v in self._history(name) if current is None or v != current.version]
        if current is None or not history:
            raise NotFoundError(
                f"Program {name!r} has no earlier champion to roll back to.",
                hint=f"See `flywheel programs show {name}`; promote a version explicitly.",
            )
        target = history[-1]
        client.set_registered_model_tag(model, "champion_history", json.dumps(history))
        client.set_registered_model_alias(model, CHAMPION, str(target))
        client.set_model_version_tag(model, str(target), "status", "champion")
        client.set_model_version_tag(model, str(current.version), "status", "rolled-back")
        return self.require(name, target)

    def _history(self, name: str) -> list[int]:
        try:
            tags = self.client.get_registered_model(self.model_name(name)).tags or {}
        except Exception:
            return []
        return [int(v) for v in json.loads(tags.get("champion_history", "[]"))]

    # --- reading ---------------------------------------------------------------------------------

    def names(self) -> list[str]:
        prefix = self.settings.tracking.model_prefix
        return sorted(
            m.name[len(prefix) :] for m in self.client.search_registered_models() if m.name.startswith(prefix)
        )

    def versions(self, name: str) -> list[ProgramVersion]:
        client = self.client
        found = client.search_model_versions(f"name='{self.model_name(name)}'")
        return sorted((self._with_aliases(name, mv) for mv in found), key=lambda v: v.version, reverse=True)

    def _with_aliases(self, name: str, mv: Any) -> ProgramVersion:
        if not getattr(mv, "aliases", None):
            mv = self.client.get_model_version(mv.name, mv.version)
        return _version(name, mv)

    def get(self, name: str, ref: str | int = CHAMPION) -> ProgramVersion | None:
        """A version by number or alias; None when it does not exist."""
        client = self.client
        model = self.model_name(name)
        try:
            mv = (
                client.get_model_version(model, str(ref))
                if str(ref).isdigit()
                else client.get_model_version_by_alias(model, str(ref))
            )
        except Exception:
            return None
        return _version(name, mv)

    def require(self, name: str, ref: str | int, *, hint: str | None = None) -> ProgramVersion:
        """A version by number or alias; NotFoundError (with ``hint``, or where to look) when it does not exist."""
        found = self.get(name, ref)
        if found is None:
            raise NotFoundError(
                f"Program {name!r} has no version {ref!r}.",
                hint=hint or f"See `flywheel programs show {name}` for its versions.",
            )
        return found

    def load_state(self, name: str, ref: str | int = CHAMPION) -> tuple[ProgramVersion, dict[str, Any]] | None:
        """The DSPy state of a version (cached per version), or None when the ref does not exist."""
        # Lazy (start-up time): only this path needs MLflow.
        import mlflow

        found = self.get(name, ref)
        if found is None:
            return None
        key = (name, found.version)
        with self._lock:
            if key not in self._states:
                path = mlflow.artifacts.download_artifacts(
                    run_id=found.run_id,
                    artifact_path=f"{found.artifact_path}/artifacts/{STATE_FILE}",
                    tracking_uri=self.settings.tracking_uri,
                )
                self._states[key] = json.loads(Path(path).read_text())
            return found, self._states[key]


def deploy_program(
    registry: ProgramRegistry, assistant: Any, name: str, *, new: bool = False
) -> tuple[ProgramVersion, bool]:
    """Make sure ``name`` has a champion logged as an MLflow pyfunc model; ``(version, registered_now)``.

    With no champion yet, the assistant's current program is logged, registered and promoted (the
    first deployment). With one, nothing changes unless ``new``: then the current program is
    registered as a candidate next to it (promoting it stays a separate, gated decision).
    """
    existing = registry.get(name, CHAMPION)
    if existing is not None and not new:
        return existing, False
    version = registry.register(name, assistant.program(name), description="flywheel deploy")
    if existing is None:
        version = registry.promote(name, version.version, reason="first deployment")
    return version, True


def registry_if_configured(settings: Settings) -> ProgramRegistry | None:
    """The registry when there can be registered versions (a configured URI, or the local store exists);
    None otherwise, so a plain `flywheel ask` does not create an MLflow database."""
    if settings.tracking.uri is not None or (settings.home / "mlflow.db").exists():
        return ProgramRegistry(settings)
    return None
