"""LanceDB tables on disk: a consistent copy of a live table (for backups) and a health check (for doctor).

A LanceDB table is a directory of immutable data and index files plus one manifest per committed
version (``_versions/``); a commit writes its new files first and its manifest last. Copying every
file and only the manifests up to the version current when the copy began therefore gives exactly
that version, whatever commits land meanwhile (their manifests are left out; their extra files are
unreferenced). Old versions' files are only removed by an explicit cleanup (LanceDB keeps them for
7 days by default), so none of the pinned version's files disappear during a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flywheel.errors import StorageError

U64_MAX = 2**64 - 1
VERSIONS = "_versions"
HINT = "latest_version_hint.json"


def manifest_version(name: str) -> int | None:
    """The version a ``_versions/`` file name holds (both of Lance's naming schemes), else None."""
    stem, _, suffix = name.partition(".")
    if suffix != "manifest" or not stem.isdigit():
        return None
    number = int(stem)
    return U64_MAX - number if number > 2**63 else number  # v2 names count down from u64::MAX


def _copy_pinned(source: Path, target: Path, version: int) -> None:
    def ignore(directory: str, names: list[str]) -> list[str]:
        if Path(directory).name != VERSIONS:
            return []
        return [n for n in names if n == HINT or (manifest_version(n) or 0) > version]

    shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)


def _scan(table: object) -> int:
    """Read one column of every row (touches every data file); returns the row count."""
    rows = table.count_rows()  # type: ignore[attr-defined]
    if rows:
        first = table.schema.names[0]  # type: ignore[attr-defined]
        table.search().select([first]).limit(rows).to_arrow()  # type: ignore[attr-defined]
    return int(rows)


def table_versions(source: Path) -> dict[str, int]:
    """The latest committed version of every table of the LanceDB database at ``source`` (read from disk now)."""
    # Lazy (start-up time): only this path needs LanceDB.
    import lancedb

    db = lancedb.connect(str(source))
    return {name: int(db.open_table(name).version) for name in db.table_names()}


def snapshot_tables(source: Path, target: Path, versions: dict[str, int]) -> dict[str, int]:
    """Copy the tables of the LanceDB database at ``source`` to ``target``, each pinned to ``versions[name]``;
    checks the copies open and hold the same rows. Returns ``versions``."""
    # Lazy (start-up time): only this path needs LanceDB.
    import lancedb

    db = lancedb.connect(str(source))
    expected: dict[str, int] = {}
    for name, version in versions.items():
        table = db.open_table(name)
        table.checkout(version)
        expected[name] = int(table.count_rows())
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():  # tables are <name>.lance directories; anything else is copied as is
        name = item.name.removesuffix(".lance")
        if item.is_dir() and name in versions:
            _copy_pinned(item, target / item.name, versions[name])
        elif item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target / item.name)
    copied = lancedb.connect(str(target))
    for name, version in versions.items():
        table = copied.open_table(name)
        if int(table.version) != version or _scan(table) != expected[name]:
            raise StorageError(
                f"The copy of index table {name!r} does not match version {version}.",
                hint="Retry the backup; if it fails again, run `flywheel doctor`.",
            )
    return versions


def check_index(uri: str) -> str:
    """Open every table and read every data file; a StorageError that says how to repair, else a summary."""
    # Lazy (start-up time): only this path needs LanceDB.
    import lancedb

    path = Path(uri)
    if "://" not in uri and not path.exists():
        return f"{uri}: no index yet (created by the first `flywheel docs add`)"
    try:
        db = lancedb.connect(uri)
        names = list(db.table_names())
        summary = []
        for name in names:
            table = db.open_table(name)
            summary.append(f"{name}: {_scan(table)} rows at version {table.version}")
    except Exception as exc:  # LanceDB raises OSError/RuntimeError/ValueError for missing or corrupt files
        detail = str(exc).splitlines()[0].split(", /rustc")[0][:400] if str(exc) else type(exc).__name__
        raise StorageError(
            f"The vector index at {uri} is damaged: {detail}",
            hint="Stop the service and restore the last backup (`flywheel restore BACKUP --force`), or move "
            f"{uri} aside and re-import the documents (`flywheel docs add …` / `flywheel docs import …`); "
            "the catalog still lists every document and who may read it.",
        ) from exc
    return "; ".join(summary) if summary else f"{uri}: empty"
