"""``flywheel backup PATH`` and ``flywheel restore PATH``: the whole FLYWHEEL_HOME, consistent while serving."""

from __future__ import annotations

from pathlib import Path

import typer

from flywheel.cli.common import console, settings


def backup(path: Path = typer.Argument(..., help="A new directory to write the backup to.")) -> None:
    """Back up FLYWHEEL_HOME (catalog, keys, feedback, index, MLflow registry and artifacts); safe while serving."""
    from flywheel.backup import backup_home

    with console.status("Backing up…") as status:
        report = backup_home(settings(), path, progress=lambda msg: status.update(f"Backing up {msg}…"))
    tables = ", ".join(f"{name} v{version}" for name, version in report.tables.items()) or "none"
    console.print(
        f"Backed up {report.files} files ({report.bytes / 1e6:.1f} MB) in {report.seconds:.1f} s: "
        f"databases {', '.join(report.databases) or 'none'}; index tables {tables}."
    )
    for note in report.skipped:
        console.print(f"[yellow]Not included:[/] {note}")
    console.print(f"Restore with: flywheel restore {report.path}")


def restore(
    path: Path = typer.Argument(..., help="A directory written by `flywheel backup`."),
    force: bool = typer.Option(
        False, "--force", help="Replace a non-empty FLYWHEEL_HOME (it is moved aside, not deleted)."
    ),
) -> None:
    """Restore FLYWHEEL_HOME from a backup (checks every checksum first). Stop `flywheel serve` before."""
    from flywheel.backup import restore_home

    with console.status("Restoring…") as status:
        summary = restore_home(settings(), path, force=force, progress=lambda msg: status.update(f"Restoring: {msg}…"))
    console.print(f"Restored {summary['files']} files into {summary['home']} (backup of {summary['created_at']}).")
    if summary["previous_home"]:
        console.print(f"The previous home was moved to {summary['previous_home']}.")
    for note in summary["skipped"]:
        console.print(f"[yellow]Was not in the backup:[/] {note}")
