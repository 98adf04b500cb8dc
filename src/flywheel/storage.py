"""Opening Flywheel's SQLAlchemy stores (catalog, conversations, feedback, API keys) in one way.

All of them share the catalog database (SQLite by default, Postgres by URL). For SQLite each
connection gets foreign keys, WAL journaling and a busy timeout, so concurrent writers wait
instead of failing.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from flywheel.errors import DiskFullError, FlywheelError, RetryLaterError, StorageError


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
        try:
            metadata.create_all(engine)
        except OperationalError as exc:
            # Two processes opening a new database at once (Spark's Python workers, say) both see a
            # table missing and both create it; the loser fails. Its second pass finds the tables.
            if "already exists" not in str(exc):
                raise
            metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise StorageError(f"Cannot open {what} in {url}: {exc.__class__.__name__}: {exc}",
                           hint="Check FLYWHEEL_KNOWLEDGE__CATALOG_URL and that its directory is writable.") from exc
    return engine, sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_errors(where: str) -> Iterator[None]:
    """Turn a failed write (disk full, read-only or vanished files) into a StorageError that says what to do.

    Nothing half-written is kept by the callers: LanceDB and SQLite commit atomically, so the store
    stays at its previous state and the same request can simply be repeated once the cause is fixed.
    """
    try:
        yield
    except FlywheelError:
        raise
    except (OSError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0].split(", /rustc")[0][:300] if str(exc) else type(exc).__name__
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc):
            raise DiskFullError(f"The disk under {where} is full; nothing was changed.",
                                hint="Free disk space (or move FLYWHEEL_HOME to a larger volume), then retry.") from exc
        raise StorageError(f"Could not write to {where}: {detail}",
                           hint="Check that the location is writable and not damaged (`flywheel doctor`), "
                           "then retry; nothing was changed.") from exc


def database_failure(exc: Exception) -> FlywheelError:
    """A database error raised mid-request, as an error that says what to do (the API's 5xx JSON)."""
    text = str(exc)
    if "disk is full" in text or "No space left" in text:
        return DiskFullError("The disk under the catalog database is full; the change was not saved.",
                             hint="Free disk space (or move FLYWHEEL_HOME to a larger volume), then retry.")
    if "database is locked" in text or "database is busy" in text:
        return RetryLaterError("The catalog database stayed busy with other writers for too long; the change "
                               "was not saved.", hint="Retry in a moment; if it keeps happening, use Postgres "
                               "(FLYWHEEL_KNOWLEDGE__CATALOG_URL) for many concurrent writers.", retry_after=2)
    return StorageError(f"The catalog database failed: {type(exc).__name__}: {text.splitlines()[0][:300]}",
                        hint="Run `flywheel doctor`; restore the last backup if the database is damaged.")
