"""Backup and restore of a whole FLYWHEEL_HOME, consistent while the service keeps running.

What a backup holds, and how each part is copied so that the copy is one consistent moment:

1. every SQLite database under the home (the catalog with documents, users, groups, API keys,
   feedback and conversations; the MLflow tracking/registry store; the maintenance log) through
   SQLite's online backup API: a transactionally consistent copy even while other processes write;
2. then the LanceDB index, pinned to the version it had while the databases were copied: the index
   version is read before and after the (millisecond) database copies, which are repeated if an index
   commit landed in between, so catalog and index describe one instant. LanceDB never rewrites the
   files of a committed version, and manifests of later commits are left out of the copy;
3. then every other file (MLflow artifacts, uploaded originals, flywheel.toml), which are written
   once before the database rows that point at them, so every registered version has its model.

The DSPy response cache is left out (a cache; it refills). A ``flywheel-backup.json`` manifest lists
every file with its SHA-256; the backup is written under a temporary name and renamed when
complete, so a half-written backup never looks like a backup. Restoring checks every checksum,
rewrites the MLflow store's absolute paths to the new home, and swaps the restored home in at once
(an existing home is kept aside, never deleted).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.errors import InvalidInputError, StorageError
from flywheel.knowledge.snapshot import snapshot_tables, table_versions

MANIFEST = "flywheel-backup.json"
ATTEMPTS = 50
FORMAT = 1
SKIP_DIRS = {"dspy_cache"}
SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".lock", ".tmp")
SQLITE_MAGIC = b"SQLite format 3\x00"
Progress = Callable[[str], None]


@dataclass
class BackupReport:
    path: Path
    files: int = 0
    bytes: int = 0
    databases: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # LanceDB table → version copied
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (online backup API, one read transaction)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def _walk(home: Path, skip: set[Path]) -> Iterator[Path]:
    for root, dirs, files in os.walk(home):
        here = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIP_DIRS and here / d not in skip and not d.startswith((".backup-", ".restoring-"))
        )
        for name in sorted(files):
            if not name.endswith(SKIP_SUFFIXES) and not name.startswith(".doctor-"):
                yield here / name


def _local_index_dir(settings: Settings) -> Path | None:
    uri = settings.index_uri
    if "://" in uri and not uri.startswith("file://"):
        return None
    path = Path(uri.removeprefix("file://")).resolve()
    return path if path.is_dir() else None


def backup_home(settings: Settings, target: Path, progress: Progress | None = None) -> BackupReport:
    """Copy FLYWHEEL_HOME to the new directory ``target`` (see the module docstring)."""
    home = settings.home
    target = target.expanduser().resolve()
    if target.exists() and any(target.iterdir()):
        raise InvalidInputError(
            f"{target} already exists and is not empty.",
            hint="Give a new directory for the backup (e.g. with the date in its name).",
        )
    if target == home or home in target.parents:
        raise InvalidInputError("The backup cannot go inside FLYWHEEL_HOME.", hint="Choose a path outside it.")
    if not home.is_dir():
        raise InvalidInputError(f"There is nothing to back up: {home} does not exist.", hint="Check FLYWHEEL_HOME.")
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    report = BackupReport(target)
    partial = target.parent / f".backup-{target.name}-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    index_dir = _local_index_dir(settings)
    index_in_home = index_dir is not None and home in index_dir.parents
    try:
        everything = list(_walk(home, {index_dir} if index_in_home and index_dir else set()))
        databases = [p for p in everything if is_sqlite(p)]
        index = index_dir if index_in_home else None
        versions = _copy_databases_at_one_index_version(home, databases, index, partial, say)
        report.databases = [str(path.relative_to(home)) for path in databases]
        if index is not None:  # 2. the index at the version it had while the databases were copied
            say(f"index {index.relative_to(home)}")
            report.tables = snapshot_tables(index, partial / index.relative_to(home), versions)
        elif settings.knowledge.index_uri:
            report.skipped.append(f"index {settings.index_uri} (outside FLYWHEEL_HOME: back it up with its store)")
        if not settings.catalog_url.startswith("sqlite"):
            report.skipped.append("catalog database (not SQLite: back it up with pg_dump or your database's tools)")
        for path in everything:  # 3. files written once before the rows that name them
            if path in databases:
                continue
            relative = path.relative_to(home)
            (partial / relative).parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(path, partial / relative)
            except FileNotFoundError:  # deleted while we copied (a temporary file)
                continue
        report.files, report.bytes = _write_manifest(partial, home, report)
        partial.rename(target) if not target.exists() else _move_into(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _copy_databases_at_one_index_version(
    home: Path, databases: list[Path], index: Path | None, partial: Path, say: Progress
) -> dict[str, int]:
    """Copy every database while no index commit happens; returns the index versions of that moment.

    The index version is read before and after the (quick) database copies; if a commit landed in
    between, the copies are made again, so the catalog and the index describe one instant.
    """
    for attempt in range(ATTEMPTS):
        before = table_versions(index) if index is not None else {}
        for path in databases:  # 1. databases, each a consistent copy
            say(f"database {path.relative_to(home)}")
            copy_sqlite(path, partial / path.relative_to(home))
        if (table_versions(index) if index is not None else {}) == before:
            return before
        time.sleep(0.05 * (attempt + 1))
    raise StorageError(
        f"The index kept changing during {ATTEMPTS} attempts to copy the databases beside it.",
        hint="Retry the backup when uploads are quieter.",
    )


def _move_into(partial: Path, target: Path) -> None:
    target.rmdir()  # empty, checked above
    partial.rename(target)


def _write_manifest(root: Path, home: Path, report: BackupReport) -> tuple[int, int]:
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        files[str(path.relative_to(root))] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}

    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "home": str(home),
        "flywheel": version("flywheel"),
        "databases": report.databases,
        "lancedb_tables": report.tables,
        "skipped": report.skipped,
        "files": files,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return len(files), sum(f["bytes"] for f in files.values())


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(
            f"{source} is not a Flywheel backup (no {MANIFEST}).",
            hint="Give the directory `flywheel backup PATH` wrote.",
        ) from None
    except ValueError as exc:
        raise InvalidInputError(f"{path} is damaged: {exc}.", hint="Use another backup.") from None
    if manifest.get("format") != FORMAT:
        raise InvalidInputError(
            f"{source} has backup format {manifest.get('format')!r}; this Flywheel reads format {FORMAT}.",
            hint="Restore it with the Flywheel version that wrote it.",
        )
    return manifest


def verify_backup(source: Path) -> dict[str, Any]:
    """The manifest, after checking every file's size and SHA-256; a clear error naming damaged files."""
    manifest = read_manifest(source)
    bad = []
    for relative, meta in manifest["files"].items():
        path = source / relative
        if not path.is_file() or path.stat().st_size != meta["bytes"] or sha256_of(path) != meta["sha256"]:
            bad.append(relative)
    if bad:
        raise StorageError(
            f"The backup {source} is damaged: {len(bad)} file(s) missing or changed ({', '.join(bad[:5])}).",
            hint="Use another backup; this one cannot be restored safely.",
        )
    return manifest


def restore_home(
    settings: Settings, source: Path, *, force: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Make FLYWHEEL_HOME an exact copy of the backup at ``source``; returns a summary.

    Stop the service first. An existing non-empty home needs ``force``; it is then moved aside to
    ``<home>.before-restore-<time>`` rather than deleted.
    """
    say = progress or (lambda _msg: None)
    source = source.expanduser().resolve()
    home = settings.home
    say("checking the backup's checksums")
    manifest = verify_backup(source)
    if home.exists() and any(home.iterdir()) and not force:
        raise InvalidInputError(
            f"{home} is not empty.",
            hint="Restore into a new FLYWHEEL_HOME, or pass --force "
            "(the current home is moved aside, not deleted). Stop `flywheel serve` first.",
        )
    staging = home.parent / f".restoring-{home.name}-{uuid.uuid4().hex[:8]}"
    try:
        for relative in manifest["files"]:
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, staging / relative)
        say("pointing the MLflow store at the new home")
        for relative in manifest["databases"]:
            rebase_paths(staging / relative, manifest["home"], str(home))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = None
    if home.exists():
        if any(home.iterdir()):
            aside = home.parent / f"{home.name}.before-restore-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
            home.rename(aside)
        else:
            home.rmdir()
    staging.rename(home)
    return {
        "home": str(home),
        "files": len(manifest["files"]),
        "created_at": manifest["created_at"],
        "previous_home": str(aside) if aside else None,
        "skipped": manifest.get("skipped", []),
    }


def rebase_paths(database: Path, old_home: str, new_home: str) -> int:
    """Rewrite absolute paths (and file:// URIs) under ``old_home`` in every text column; rows changed."""
    if old_home == new_home:
        return 0
    old, new = old_home.rstrip("/") + "/", new_home.rstrip("/") + "/"
    changed = 0
    with sqlite3.connect(database) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [
                r[1]
                for r in db.execute(f'PRAGMA table_info("{table}")')
                if (r[2] or "").upper() in ("TEXT", "VARCHAR", "") or "CHAR" in (r[2] or "").upper()
            ]
            for column in columns:
                cursor = db.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE instr("{column}", ?) > 0',
                    (old, new, old),
                )
                changed += cursor.rowcount
    return changed
