"""``flywheel maintenance``: load the maintenance log the agent's tool reads."""

from __future__ import annotations

from pathlib import Path

import typer

from flywheel.cli.common import console, settings

app = typer.Typer(
    help="The maintenance log (aircraft, inspections, deferred defects, components).", no_args_is_help=True
)


@app.command("load")
def load(folder: Path = typer.Argument(..., help="Folder with aircraft.csv, inspections.csv, …")) -> None:
    """(Re)build the maintenance database from CSV files (atomic replace)."""
    from flywheel.tools.maintenance import build_database

    path = build_database(folder, settings().maintenance_db)
    console.print(f"Maintenance log ready at {path}.")


@app.command("query")
def query(request: str = typer.Argument(..., help="e.g. 'open deferred defects on N401SK'")) -> None:
    """Run the same lookup the agent's tool runs."""
    from flywheel.tools.maintenance import MaintenanceRecords

    console.print(MaintenanceRecords(settings().maintenance_db).answer(request).text)
