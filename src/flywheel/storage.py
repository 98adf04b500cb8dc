"""Storage failures as errors that say what to do: failed writes (the vector index, the catalog) and
database errors raised mid-request. The SQL stores themselves are in :mod:`flywheel.stores`."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from flywheel.errors import DiskFullError, FlywheelError, RetryLaterError, StorageError


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
            raise DiskFullError(
                f"The disk under {where} is full; nothing was changed.",
                hint="Free disk space (or move FLYWHEEL_HOME to a larger volume), then retry.",
            ) from exc
        raise StorageError(
            f"Could not write to {where}: {detail}",
            hint="Check that the location is writable and not damaged (`flywheel doctor`), "
            "then retry; nothing was changed.",
        ) from exc


def database_failure(exc: Exception) -> FlywheelError:
    """A database error raised mid-request, as an error that says what to do (the API's 5xx JSON)."""
    text = str(exc)
    if "disk is full" in text or "No space left" in text:
        return DiskFullError(
            "The disk under the catalog database is full; the change was not saved.",
            hint="Free disk space (or move FLYWHEEL_HOME to a larger volume), then retry.",
        )
    if "database is locked" in text or "database is busy" in text:
        return RetryLaterError(
            "The catalog database stayed busy with other writers for too long; the change was not saved.",
            hint="Retry in a moment; if it keeps happening, use Postgres "
            "(FLYWHEEL_KNOWLEDGE__CATALOG_URL) for many concurrent writers.",
            retry_after=2,
        )
    return StorageError(
        f"The catalog database failed: {type(exc).__name__}: {text.splitlines()[0][:300]}",
        hint="Run `flywheel doctor`; restore the last backup if the database is damaged.",
    )
