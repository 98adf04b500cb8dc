"""MLflow wiring: the tracking/registry URIs under FLYWHEEL_HOME and the experiment for runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from flywheel.config import Settings
from flywheel.errors import ConfigError, StorageError
from flywheel.stores.database import first_open_lock, use_write_ahead_log

_LOCK = threading.Lock()
_READY: set[tuple[str, str]] = set()
_ACTIVE: tuple[str, str] | None = None  # the (tracking URI, experiment) this process last made active
TRACKING_SCHEMA_LOCK = 724_158_302  # pg_advisory_lock key while MLflow creates its schema (stores use …301)


def use_tracking(settings: Settings) -> Any:
    """Point MLflow at Flywheel's tracking store and experiment; return an ``MlflowClient``."""
    # The SQLite store gets a connection pool large enough for a serving process's concurrent
    # writers (the default 5 + 10 ran out at 32 concurrent requests and blocked them for 30 s
    # each). Commands export traces synchronously; `flywheel serve` switches to the asynchronous
    # queue (serve/tracing.py).
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "32")
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", "32")
    # Lazy (start-up time): only this path needs MLflow.
    import mlflow
    from mlflow import MlflowClient

    global _ACTIVE
    settings.ensure_dirs()
    uri = settings.tracking_uri
    if uri == settings.catalog_url:  # MLflow then fails with "Can't locate revision identified by '0001'"
        raise ConfigError(
            "tracking.uri and knowledge.catalog_url name the same database: MLflow and Flywheel's stores each "
            "keep their schema revision in its alembic_version table, so they cannot share one database.",
            hint="Give the tracking store a database of its own, e.g. CREATE DATABASE mlflow and "
            "FLYWHEEL_TRACKING__URI=postgresql+psycopg://user:password@host/mlflow.",
        )
    with _LOCK:
        if mlflow.get_tracking_uri() != uri:  # moved by other code: make our experiment active again
            _ACTIVE = None
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        key = (uri, settings.tracking.experiment)
        try:
            if key not in _READY:
                # MLflow creates and migrates its schema when a process first opens the store; processes
                # doing so at once on a new database (`flywheel serve --workers N`) fail with duplicate
                # tables, so they take turns. The first experiment is created under the same lock.
                with first_open_lock(uri, TRACKING_SCHEMA_LOCK):
                    use_write_ahead_log(uri)
                    if mlflow.get_experiment_by_name(settings.tracking.experiment) is None:
                        _create_experiment(mlflow, settings)
                _READY.add(key)
            if key != _ACTIVE:
                # set_experiment resets MLflow's tracer provider (3.17), which orphans the spans of
                # every trace in flight: a served request lost its root span whenever the champion
                # refresh loop ran mid-request. So only when the experiment really changes.
                mlflow.set_experiment(settings.tracking.experiment)
                _ACTIVE = key
        except Exception as exc:  # sqlite locked, bad URI, unwritable artifact root …
            raise StorageError(
                f"Cannot open the MLflow tracking store {uri}: {exc}",
                hint="Check tracking.uri / FLYWHEEL_TRACKING__URI and that FLYWHEEL_HOME is writable.",
            ) from exc
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _create_experiment(mlflow: Any, settings: Settings) -> None:
    """Create the experiment; one that another process created meanwhile is as good. Over an HTTP
    tracking server (the trace export child that `flywheel serve --workers N` shares) there is no file
    lock to take, and each worker creates the experiment on a new store at the same moment."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow.create_experiment(settings.tracking.experiment, artifact_location=settings.artifact_root)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def log_run_results(
    settings: Settings,
    *,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float | None],
    report_dir: Any = None,
    tables: dict[str, Any] | None = None,
) -> str:
    """Log one evaluation/optimization run (params, metrics, report files, tables); returns the run id."""
    # Lazy (start-up time): only this path needs MLflow.
    import mlflow

    use_tracking(settings)
    active = mlflow.active_run()
    context = mlflow.start_run(run_name=run_name) if active is None else nullcontext(active)
    with context as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items() if v is not None})
        mlflow.log_metrics({_metric_key(k): float(v) for k, v in metrics.items() if v is not None})
        if report_dir is not None:
            mlflow.log_artifacts(str(report_dir), artifact_path="report")
        for name, table in (tables or {}).items():
            mlflow.log_table(table, artifact_file=name)
        return run.info.run_id


def _metric_key(name: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and spaces; '@' is not one of them."""
    return name.replace("@", "_at_")


@contextmanager
def dspy_autologging(settings: Settings) -> Iterator[None]:
    """Trace every DSPy module and LM call to Flywheel's tracking store while inside; off again on exit,
    also when the body raises (a failed evaluation must not leave a long-lived process tracing)."""
    # Lazy (start-up time): only this path needs MLflow.
    import mlflow
    import mlflow.dspy

    use_tracking(settings)
    mlflow.dspy.autolog(log_traces=True)
    try:
        yield
    finally:
        mlflow.dspy.autolog(disable=True)
