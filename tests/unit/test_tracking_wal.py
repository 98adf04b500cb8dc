"""MLflow's SQLite tracking store runs in WAL mode: every trace, run and registry write commits without
creating, syncing and deleting a rollback journal (the trace export process's CPU per request)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flywheel.config import load_settings
from flywheel.registry.tracking import use_tracking
from flywheel.stores.database import use_write_ahead_log


def journal_mode(path: str) -> str:
    with sqlite3.connect(path) as connection:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def test_the_tracking_store_of_a_new_home_is_in_wal_mode() -> None:
    settings = load_settings()
    use_tracking(settings)
    assert settings.tracking_uri.startswith("sqlite:///")
    assert journal_mode(settings.tracking_uri.removeprefix("sqlite:///")) == "wal"


def test_only_sqlite_files_are_switched(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    sqlite3.connect(path).close()
    assert use_write_ahead_log(f"sqlite:///{path}") and journal_mode(str(path)) == "wal"
    assert not use_write_ahead_log("sqlite:///:memory:")
    assert not use_write_ahead_log("postgresql+psycopg://user@localhost/mlflow")
