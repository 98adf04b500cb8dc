"""``flywheel search``: hybrid search of the knowledge base as a user."""

from __future__ import annotations

import typer
from rich.table import Table

from flywheel.cli.common import console, knowledge_base
from flywheel.knowledge.index import MetadataFilter


def search(
    query: str = typer.Argument(..., help="Question or keywords."),
    user: str = typer.Option(..., "--as", help="Search as this user: only their groups' documents are searched."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="Number of passages."),
    mode: str = typer.Option("hybrid", help="hybrid | vector | text"),
    tag: list[str] = typer.Option([], "--tag", help="Only documents with any of these tags."),
) -> None:
    """Show the best passages the user may read, with citations."""
    from flywheel.errors import InvalidInputError

    if mode not in ("hybrid", "vector", "text"):
        raise InvalidInputError(f"Unknown search mode {mode!r}.", hint="Use hybrid, vector or text.")
    kb = knowledge_base()
    hits = kb.search(
        kb.principal(user),
        query,
        k=k,
        mode=mode,  # type: ignore[arg-type]
        metadata=MetadataFilter(tags=tuple(tag)) if tag else None,
    )
    table = Table(title=f"{len(hits)} passages for {user}", show_lines=True)
    table.add_column("#")
    table.add_column("citation", overflow="fold")
    table.add_column("passage", overflow="fold")
    for i, hit in enumerate(hits, 1):
        table.add_row(str(i), hit.citation(), hit.text[:400] + ("…" if len(hit.text) > 400 else ""))
    console.print(table)
