"""Shared fixtures: every test runs with its own FLYWHEEL_HOME and no stray FLYWHEEL_* variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import postgres as throwaway_postgres
from bench.postgres import PostgresError, PostgresServer

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip: a user's clone has no ../shared (CI always does)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared/data exists only in the Flywheel workspace and CI")
    return path


@pytest.fixture(autouse=True)
def flywheel_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("flywheel-home")
    for name in list(os.environ):
        if name.startswith("FLYWHEEL_"):
            monkeypatch.delenv(name)
    # `flywheel classify` sets MLflow's trace sampling in os.environ (right for a CLI process); in-process
    # CLI tests must not leave it to later tests. Set, then removed: the teardown restores what was there.
    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "")
    monkeypatch.delenv("MLFLOW_TRACE_SAMPLING_RATIO")
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.chdir(home)
    return home


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (skips when PostgreSQL is not installed)."""
    reason = throwaway_postgres.unavailable()
    if reason is not None:
        pytest.skip(f"{reason} to run the PostgreSQL tests too")
    try:
        server = throwaway_postgres.start()
    except PostgresError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for the stores: a SQLite file, then a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()
