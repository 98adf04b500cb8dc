"""One SQLAlchemy metadata for every store, one engine per database URL, and the session helper.

The catalog, conversations, feedback, API keys and stored responses all live in one database (the
catalog URL: SQLite under FLYWHEEL_HOME by default, PostgreSQL by a ``postgresql+psycopg://`` URL).
Their tables are declared on :class:`Base`; the schema is created and upgraded by the Alembic
migrations in ``flywheel/stores/migrations`` when a process first opens the URL, never by
``create_all``. A database created by ``create_all`` before migrations existed is recognised and
stamped (its tables are today's initial schema), so it opens as before.

For SQLite each connection gets foreign keys, WAL journaling and a busy timeout, so concurrent
writers wait instead of failing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

from flywheel.errors import StorageError

log = logging.getLogger("flywheel.stores")

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    """The declarative base of every Flywheel table (one metadata, one set of migrations)."""

    metadata = MetaData()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """An engine on one URL, with its schema at the latest migration, and short transactions on it."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back if it raises."""
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads (nothing is committed)."""
        with self.sessions() as session:
            yield session


_DATABASES: dict[tuple[int, str], Database] = {}
_LOCK = threading.Lock()


def open_database(url: str, what: str = "the catalog database") -> Database:
    """The database at ``url``, migrated to the latest schema; one engine per URL and process (a forked
    process, e.g. a Spark worker, opens its own). ``what`` names the store in the error message."""
    key = (os.getpid(), url)
    with _LOCK:
        database = _DATABASES.get(key)
        if database is None:
            database = _DATABASES[key] = _open(url, what)
        return database


def _open(url: str, what: str) -> Database:
    try:
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        with first_open_lock(url):
            upgrade(engine)
    except SQLAlchemyError as exc:
        raise StorageError(
            f"Cannot open {what} in {safe_url(url)}: {exc.__class__.__name__}: {exc}",
            hint="Check FLYWHEEL_KNOWLEDGE__CATALOG_URL, that the database server is running "
            "and that its directory is writable.",
        ) from exc
    return Database(url, engine)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the Alembic migrations (tables that already exist, from a
    database created before migrations, are kept and the database stamped)."""
    from alembic.command import upgrade as alembic_upgrade  # Lazy (start-up time): only this path needs Alembic.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        alembic_upgrade(config, revision)


@contextmanager
def first_open_lock(url: str, postgres_key: int | None = None) -> Iterator[None]:
    """Processes opening one new database at once (Spark's Python workers loading a model, the processes
    of ``flywheel serve --workers N``) create its schema one after the other: a file lock beside a SQLite
    file; on PostgreSQL a session advisory lock on ``postgres_key`` when given (Flywheel's own migrations
    take a transaction advisory lock in the migration itself instead, see migrations/env.py)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and postgres_key is not None:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": postgres_key})
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": postgres_key})
        finally:
            engine.dispose()
        return
    path = sqlite_file(url)
    if path is None:
        yield
        return
    lock_path = Path(path).with_name(Path(path).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (``None``: another backend, an in-memory or ``file:`` URI database)."""
    parsed = make_url(url)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    return None if not path or path == ":memory:" or path.startswith("file:") else path


def use_write_ahead_log(url: str) -> bool:
    """Put a SQLite database that Flywheel does not open itself (MLflow's tracking store) in WAL mode,
    which the file keeps for every later connection; whether it is. Other backends: ``False``, nothing
    done. In the default rollback-journal mode each commit creates, syncs and deletes a journal file:
    the trace export process spent about 4 of its 25 ms of CPU per served request on that."""
    path = sqlite_file(url)
    if path is None:
        return False
    import sqlite3

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.Error as exc:  # locked by a writer for 10 s, unwritable: the store works as before
        log.warning("The MLflow store %s stays in its journal mode: %s", path, exc)
        return False
    return bool(mode and str(mode[0]).lower() == "wal")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)
