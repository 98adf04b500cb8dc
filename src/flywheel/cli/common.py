"""Helpers shared by CLI command groups: settings, the knowledge base, progress and tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flywheel.config import Settings, load_settings

if TYPE_CHECKING:
    from flywheel.knowledge.base import IngestResult, KnowledgeBase, ProgressCallback

console = Console()


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


def knowledge_base() -> KnowledgeBase:
    from flywheel.knowledge.base import KnowledgeBase

    return KnowledgeBase(settings())


@contextmanager
def file_progress(total: int, label: str = "Ingesting") -> Iterator[ProgressCallback]:
    """A Rich progress bar over files; yields the callback the knowledge base calls per file."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, current="")

        def advance(source: str, _chunks: int) -> None:
            progress.update(task, advance=1, current=source)

        yield advance


def ingest_summary(results: Sequence[IngestResult]) -> Table:
    colours = {"added": "green", "updated": "cyan", "unchanged": "dim", "regrouped": "cyan", "failed": "bold red"}
    table = Table(title="Ingestion summary")
    for column in ("file", "status", "chunks", "document", "error"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(
            r.source,
            f"[{colours.get(r.status, 'white')}]{r.status}[/]",
            str(r.chunks or ""),
            r.doc_id or "",
            r.error or "",
        )
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    table.caption = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return table


@contextmanager
def progress_bar() -> Iterator[Any]:
    """Rich progress bars by label; yields ``update(label, done, total)``."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, Any] = {}

        def update(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done, total=total)

        yield update


def metrics_table(title: str, columns: dict[str, dict[str, float | None]]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    names = list(dict.fromkeys(m for values in columns.values() for m in values))
    for metric in names:
        table.add_row(metric, *[("–" if v.get(metric) is None else f"{v[metric]:.3f}") for v in columns.values()])
    return table
