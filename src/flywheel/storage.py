"""Opening Flywheel's SQLAlchemy stores (catalog, conversations, feedback, API keys) in one way.

All of them share the catalog database (SQLite by default, Postgres by URL). For SQLite each
connection gets foreign keys, WAL journaling and a busy timeout, so concurrent writers wait
instead of failing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from flywheel.errors import StorageError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_store(url: str, metadata: MetaData, what: str) -> tuple[Engine, sessionmaker]:
    """An engine with ``metadata``'s tables created, and its session factory; ``what`` names the
    store in the error message."""
    try:
        engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
        metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise StorageError(f"Cannot open {what} in {url}: {exc.__class__.__name__}: {exc}",
                           hint="Check FLYWHEEL_KNOWLEDGE__CATALOG_URL and that its directory is writable.") from exc
    return engine, sessionmaker(engine, expire_on_commit=False)
