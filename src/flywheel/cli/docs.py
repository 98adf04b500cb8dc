"""``flywheel docs``: add, import, list, remove documents and change who may read them."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.table import Table

from flywheel.cli.common import console, file_progress, ingest_summary, knowledge_base, settings
from flywheel.errors import InvalidInputError

app = typer.Typer(help="Documents in the knowledge base.", no_args_is_help=True)

AS_USER = typer.Option(..., "--as", help="The user acting (their groups decide what they may do).")


@app.command("add")
def add(
    paths: list[Path] = typer.Argument(..., help="Files or folders (pdf, docx, html, md, txt, csv)."),
    group: list[str] = typer.Option(..., "--group", "-g", help="Share with this group (repeatable)."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag the documents (repeatable)."),
    user: str = AS_USER,
) -> None:
    """Ingest files for groups the user belongs to. Unchanged files are skipped; changed ones replaced."""
    from flywheel.knowledge.base import expand_paths

    kb = knowledge_base()
    principal = kb.principal(user)
    files = expand_paths(paths)
    if not files:
        raise InvalidInputError("No supported files found.", hint="Give pdf, docx, html, md, txt or csv files.")
    with file_progress(len(files)) as progress:
        results = kb.ingest_paths(principal, files, groups=group, tags=tag, progress=progress)
    console.print(ingest_summary(results))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(2)


@app.command("import")
def import_manifest(
    manifest: Path = typer.Argument(..., help="YAML list of {path, title, owner, groups, tags}."),
    user: str = AS_USER,
) -> None:
    """Bulk-ingest documents described by a manifest, each on behalf of its owner (admins only)."""
    from flywheel.errors import AccessDeniedError

    kb = knowledge_base()
    acting = kb.principal(user)
    if not acting.is_admin:
        raise AccessDeniedError(f"{user} is not an admin.", hint="Manifest imports act for other users: use an admin.")
    entries = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    if isinstance(entries, dict):
        entries = entries.get("documents", [])
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{manifest} lists no documents.", hint="It must be a YAML list of entries.")
    base = manifest.parent
    results = []
    with file_progress(len(entries)) as progress:
        for entry in entries:
            path = base / entry["path"]
            owner = kb.principal(entry["owner"])
            results += kb.ingest_files(
                owner,
                [(path.name, path.read_bytes())],
                groups=entry["groups"],
                tags=entry.get("tags", []),
                titles={path.name: entry["title"]} if entry.get("title") else None,
                progress=progress,
            )
    console.print(ingest_summary(results))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(2)


@app.command("reindex")
def reindex_command() -> None:
    """Re-embed every chunk with the configured embedder (after changing embedder.model). Stop the service first."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flywheel.knowledge.embed import get_embedder
    from flywheel.knowledge.reindex import reindex

    config = settings()
    embedder = get_embedder(config.embedder)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"Re-embedding with {embedder.name}", total=None)
        result = reindex(
            config.index_uri,
            embedder,
            ann_min_rows=config.knowledge.ann_min_rows,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(
        f"Re-embedded {result.chunks} chunks with {result.embedder} "
        f"(before: {result.previous_embedder or 'unrecorded'})."
    )


@app.command("list")
def list_documents(user: str = AS_USER) -> None:
    """Documents the user may read (admins: all)."""
    kb = knowledge_base()
    docs = kb.list_documents(kb.principal(user))
    table = Table(title=f"Documents visible to {user}")
    for column in ("id", "source", "title", "owner", "groups", "version", "status"):
        table.add_column(column, overflow="fold")
    for d in docs:
        table.add_row(d.id, d.source, d.title, d.owner, ", ".join(d.groups), str(d.live_version), d.status)
    console.print(table)


@app.command("rm")
def remove(document_id: str = typer.Argument(...), user: str = AS_USER) -> None:
    """Delete a document and all its chunks (owner or admin)."""
    kb = knowledge_base()
    doc = kb.delete(kb.principal(user), document_id)
    console.print(f"Deleted {doc.source} ({doc.id}).")


@app.command("grant")
def grant(
    document_id: str = typer.Argument(...),
    group: list[str] = typer.Option(..., "--group", "-g"),
    user: str = AS_USER,
) -> None:
    """Share a document with more groups (owner or admin)."""
    kb = knowledge_base()
    doc = kb.grant(kb.principal(user), document_id, group)
    console.print(f"{doc.source} is now shared with: {', '.join(doc.groups)}")


@app.command("revoke")
def revoke(
    document_id: str = typer.Argument(...),
    group: list[str] = typer.Option(..., "--group", "-g"),
    user: str = AS_USER,
) -> None:
    """Stop sharing a document with groups (owner or admin)."""
    kb = knowledge_base()
    doc = kb.revoke(kb.principal(user), document_id, group)
    console.print(f"{doc.source} is now shared with: {', '.join(doc.groups)}")
