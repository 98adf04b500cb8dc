"""``flywheel programs``: registered program versions, the champion, promotion and rollback."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from flywheel.cli.common import console, settings

app = typer.Typer(
    help="Registered program versions (MLflow registry): list, show, promote, rollback.", no_args_is_help=True
)


def _registry() -> Any:
    from flywheel.registry.programs import ProgramRegistry

    return ProgramRegistry(settings())


def _versions_table(name: str, versions: list[Any]) -> Table:
    table = Table(title=f"{name}: versions")
    for column in ("version", "status", "aliases", "optimizer", "metrics", "registered"):
        table.add_column(column, overflow="fold")
    for v in versions:
        metrics = ", ".join(f"{k}={val:.3f}" for k, val in sorted(v.metrics.items()))
        table.add_row(
            str(v.version),
            ("[green]" if v.is_champion else "") + v.status,
            ", ".join(v.aliases),
            v.params.get("optimizer", ""),
            metrics,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created_at / 1000)),
        )
    return table


@app.command("list")
def list_programs() -> None:
    """Programs with registered versions and their champions."""
    registry = _registry()
    table = Table(title="Registered programs")
    for column in ("program", "champion", "versions", "model URI"):
        table.add_column(column)
    for name in registry.names():
        champion = registry.get(name)
        table.add_row(
            name,
            str(champion.version) if champion else "–",
            str(len(registry.versions(name))),
            registry.model_uri(name),
        )
    if not table.rows:
        console.print("No registered programs yet: run `flywheel optimize` or `flywheel deploy`.")
        return
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Program name, e.g. rag or classifier.")) -> None:
    """Every version of a program with its status, metrics and optimizer."""
    from flywheel.errors import NotFoundError

    versions = _registry().versions(name)
    if not versions:
        raise NotFoundError(
            f"Program {name!r} has no registered versions.",
            hint="Run `flywheel optimize NAME --train FILE` or `flywheel deploy --program NAME`.",
        )
    console.print(_versions_table(name, versions))


@app.command("promote")
def promote(
    name: str = typer.Argument(...),
    version: int = typer.Argument(..., help="Version number."),
    reason: str = typer.Option("promoted by hand", "--reason"),
) -> None:
    """Make a version the champion (bypasses the gate: use after reviewing its metrics)."""
    promoted = _registry().promote(name, version, reason=reason)
    console.print(f"{name} v{promoted.version} is now the champion.")


@app.command("rollback")
def rollback(name: str = typer.Argument(...)) -> None:
    """Give the champion alias back to the previous champion."""
    restored = _registry().rollback(name)
    console.print(f"{name}: champion rolled back to v{restored.version}.")
