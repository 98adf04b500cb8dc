"""``flywheel doctor`` and ``flywheel config``."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from flywheel.cli.checks import run_checks
from flywheel.config import config_file_path, load_settings

console = Console()


def doctor() -> None:
    """Check the installation: configuration, data directory, LM, embedder. Exit 1 on any failure."""
    settings = load_settings()
    with console.status("Checking the installation (loads the models)…"):
        checks = run_checks(settings)
    table = Table(title="flywheel doctor", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    colours = {"ok": "green", "fail": "bold red", "skip": "yellow"}
    for check in checks:
        detail = check.detail + (f"\n[yellow]How to fix:[/] {check.hint}" if check.hint else "")
        table.add_row(check.name, f"[{colours[check.status]}]{check.status}[/]", detail)
    console.print(table)
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(1)


def show_config() -> None:
    """Print the settings in force (no secrets: keys are named by variable, never stored)."""
    settings = load_settings()
    console.print(f"# source: {config_file_path() or 'environment and defaults'}")
    console.print_json(json.dumps(settings.model_dump(mode="json")))
