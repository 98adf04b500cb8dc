"""The MLflow tracking store on PostgreSQL (``tracking.uri = postgresql+psycopg://…``, psycopg 3): Flywheel's
own registry and request tracer against a throwaway server (tests/conftest.py; skipped with the reason
when PostgreSQL is not installed). MLflow runs its own schema migrations on the empty database, also
when several processes open it at once (``flywheel serve --workers N``)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from bench.postgres import PostgresServer
from mlflow import MlflowClient

from flywheel.config import load_settings
from flywheel.errors import ConfigError
from flywheel.registry.assessments import RATING
from flywheel.registry.programs import ProgramRegistry
from flywheel.registry.tracking import use_tracking
from flywheel.serve.tracing import Tracer
from tests.unit.test_registry import classifier_with_demo
from tests.unit.test_serve_tracing import CALLS, SPANS, isolated_export, run_concurrently, stored_traces

pytestmark = pytest.mark.usefixtures(isolated_export.__name__)


def test_program_versions_and_traces_live_in_a_postgresql_tracking_store(
    postgres: PostgresServer, flywheel_home: Path
) -> None:
    settings = load_settings(tracking={"uri": postgres.new_database("mlflow")})
    assert settings.tracking_uri.startswith("postgresql+psycopg://")

    registry = ProgramRegistry(settings)
    first = registry.register("classifier", classifier_with_demo("first"), metrics={"accuracy": 0.5})
    registry.register("classifier", classifier_with_demo("second"), metrics={"accuracy": 0.7})
    registry.promote("classifier", first.version, reason="on postgres")

    reader = ProgramRegistry(load_settings(tracking={"uri": settings.tracking_uri}))  # another process's view
    champion, state = reader.load_state("classifier") or pytest.fail("no champion stored")
    assert (champion.version, champion.status, champion.metrics) == (1, "champion", {"accuracy": 0.5})
    assert [v.version for v in reader.versions("classifier")] == [2, 1]
    assert "first" in str(state)

    tracer = Tracer(settings)
    assert tracer.enabled
    ids = run_concurrently(tracer)
    tracer.log_feedback(ids[0], "alice", rating="up")
    tracer.flush()
    stored = stored_traces(settings)
    assert len(set(ids)) == CALLS and set(stored) == set(ids)
    assert all(names == SPANS for names in stored.values())
    trace = MlflowClient(tracking_uri=settings.tracking_uri).get_trace(ids[0])
    assert [(a.name, a.value, a.source.source_id) for a in trace.info.assessments] == [(RATING, True, "alice")]

    assert not (flywheel_home / "mlflow.db").exists()  # nothing fell back to the SQLite default


def _open_tracking(uri: str, home: str) -> None:
    use_tracking(load_settings(home=home, tracking={"uri": uri}))


def test_processes_opening_a_new_tracking_store_at_once_all_succeed(store_url: str, tmp_path: Path) -> None:
    """Without turns, 3 of 4 processes failed on PostgreSQL (duplicate alembic_version type) and served
    without tracing."""
    home = tmp_path / "home"  # its default catalog is not the tracking store's database
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_tracking, args=(store_url, str(home))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    client = use_tracking(load_settings(home=home, tracking={"uri": store_url}))
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "flywheel"]


def test_the_tracking_store_may_not_share_the_catalog_database(store_url: str) -> None:
    """Both schemas keep their revision in alembic_version: MLflow failed with "Can't locate revision"."""
    settings = load_settings(knowledge={"catalog_url": store_url}, tracking={"uri": store_url})
    with pytest.raises(ConfigError, match="same database") as raised:
        ProgramRegistry(settings).names()
    assert "FLYWHEEL_TRACKING__URI" in (raised.value.hint or "")
