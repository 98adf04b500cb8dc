"""MLflow wiring: the tracking/registry URIs under FLYWHEEL_HOME and the experiment for runs."""

from __future__ import annotations

import os
import threading
from typing import Any

from flywheel.config import Settings
from flywheel.errors import StorageError

_LOCK = threading.Lock()
_READY: set[tuple[str, str]] = set()


def use_tracking(settings: Settings) -> Any:
    """Point MLflow at Flywheel's tracking store and experiment; return an ``MlflowClient``."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    import mlflow
    from mlflow import MlflowClient

    settings.ensure_dirs()
    uri = settings.tracking_uri
    with _LOCK:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        key = (uri, settings.tracking.experiment)
        try:
            if key not in _READY:
                if mlflow.get_experiment_by_name(settings.tracking.experiment) is None:
                    mlflow.create_experiment(settings.tracking.experiment, artifact_location=settings.artifact_root)
                _READY.add(key)
            mlflow.set_experiment(settings.tracking.experiment)
        except Exception as exc:  # sqlite locked, bad URI, unwritable artifact root …
            raise StorageError(f"Cannot open the MLflow tracking store {uri}: {exc}",
                               hint="Check tracking.uri / FLYWHEEL_TRACKING__URI and that FLYWHEEL_HOME is writable.") \
                from exc
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
