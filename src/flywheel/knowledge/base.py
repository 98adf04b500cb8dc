"""The knowledge base: ingest documents for groups, search them as a principal, manage access.

Ingestion of a batch: parse and chunk every file (a bad file fails alone, before anything is
stored), record a *pending* version in the catalog, embed the chunks, commit them to the index in
one LanceDB transaction (replacing older versions of the same documents), then mark the versions
*ready*. A process killed at any point leaves each document either at its old version or at its
new one in the index, and the next run of the same command recognises pending versions and
finishes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.access import Principal
from flywheel.config import Settings
from flywheel.errors import FlywheelError, InvalidInputError, NotFoundError
from flywheel.knowledge.catalog import Catalog
from flywheel.knowledge.chunk import Chunk, chunk_document, count_tokens_approx
from flywheel.knowledge.embed import Embedder, get_embedder
from flywheel.knowledge.index import LANGUAGE, SEGMENTED, ChunkIndex, Fusion, Hit, MetadataFilter, SearchMode
from flywheel.knowledge.language import CJK_LANGUAGES, detect_language, segment
from flywheel.knowledge.parse import SUPPORTED_SUFFIXES, ParsedDocument, parse_document
from flywheel.stores.catalog import Document


@dataclass
class IngestResult:
    """What happened to one file."""

    source: str
    status: str  # added | updated | unchanged | regrouped | failed
    doc_id: str | None = None
    version: int | None = None
    chunks: int = 0
    error: str | None = None


@dataclass
class _Prepared:
    source: str
    data_hash: str
    size: int
    parsed: ParsedDocument
    chunks: list[Chunk]
    groups: list[str]
    tags: list[str]
    title: str
    existing: Document | None
    owner: str = ""
    language: str = "und"  # detected once for the whole document; CJK chunks get a segmented copy
    doc_id: str = ""
    version: int = 0
    result: IngestResult = field(default_factory=lambda: IngestResult("", "pending"))


ProgressCallback = Callable[[str, int], None]  # (source, chunks done for it)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def media_type_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return {".md": "text/markdown", ".markdown": "text/markdown", ".csv": "text/csv"}.get(
        suffix, mimetypes.guess_type(name)[0] or "application/octet-stream"
    )


class KnowledgeBase:
    """Catalog + chunk index + embedder, with access control on every read and write."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        settings.ensure_dirs()
        self.settings = settings
        self.catalog = Catalog(settings.catalog_url)
        self.embedder = embedder or get_embedder(settings.embedder)
        self._index: ChunkIndex | None = None
        self._index_lock = threading.Lock()

    @property
    def index(self) -> ChunkIndex:
        with self._index_lock:
            if self._index is None:
                self._index = ChunkIndex(
                    self.settings.index_uri,
                    self.embedder.dimensions,
                    ann_min_rows=self.settings.knowledge.ann_min_rows,
                    embedder=self.embedder.name,
                )
            return self._index

    def principal(self, user: str) -> Principal:
        return self.catalog.principal(user)

    # --- ingestion ----------------------------------------------------------------------------

    def ingest_files(
        self,
        principal: Principal,
        files: Iterable[tuple[str, bytes]],
        *,
        groups: Sequence[str],
        tags: Sequence[str] = (),
        titles: dict[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[IngestResult]:
        """Ingest (name, bytes) pairs for ``groups``; one result per file, in order."""
        groups = self.catalog.require_groups(list(groups))
        principal.require_member(groups)
        self._open_index_in_background()
        results: list[IngestResult] = []
        batch: list[_Prepared] = []
        batch_chunks = 0
        for name, data, existing in self._with_existing(principal, files):
            prepared = self._prepare(principal, name, data, groups, list(tags), (titles or {}).get(name), existing)
            results.append(prepared.result if isinstance(prepared, _Prepared) else prepared)
            if not isinstance(prepared, _Prepared):
                if progress:
                    progress(name, 0)
                continue
            batch.append(prepared)
            batch_chunks += len(prepared.chunks)
            if batch_chunks >= self.settings.knowledge.batch_chunks:
                self._commit(batch, progress)
                batch, batch_chunks = [], 0
        if batch:
            self._commit(batch, progress)
        if any(r.status in ("added", "updated") for r in results):
            self.index.ensure_indexes()
        return results

    def _open_index_in_background(self) -> None:
        """Open the index (importing LanceDB takes seconds) while the first files are parsed and embedded;
        a failure is raised again, with its hint, where the index is first needed."""
        if self._index is None:
            threading.Thread(target=self._try_open_index, name="open-index", daemon=True).start()

    def _try_open_index(self) -> None:
        with contextlib.suppress(Exception):  # raised again where the index is first needed
            _ = self.index

    def ingest_paths(
        self,
        principal: Principal,
        paths: Sequence[Path],
        *,
        groups: Sequence[str],
        tags: Sequence[str] = (),
        progress: ProgressCallback | None = None,
    ) -> list[IngestResult]:
        """Ingest files and folders (recursively, supported types only)."""
        return self.ingest_files(
            principal, _read_files(expand_paths(paths)), groups=groups, tags=tags, progress=progress
        )

    def _with_existing(
        self,
        principal: Principal,
        files: Iterable[tuple[str, bytes]],
        *,
        lookahead: int = 64,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> Iterator[tuple[str, bytes, Document | None]]:
        """Each file with the principal's document of that name, looked up for up to ``lookahead`` files
        (holding at most ``max_bytes`` of them) in one query instead of one query per file."""
        pending: list[tuple[str, bytes]] = []
        size = 0
        for name, data in files:
            pending.append((name, data))
            size += len(data)
            if len(pending) >= lookahead or size >= max_bytes:
                yield from self._looked_up(principal, pending)
                pending, size = [], 0
        yield from self._looked_up(principal, pending)

    def _looked_up(
        self, principal: Principal, files: list[tuple[str, bytes]]
    ) -> Iterator[tuple[str, bytes, Document | None]]:
        existing = self.catalog.find_documents(principal.user, [name for name, _ in files])
        for name, data in files:
            yield name, data, existing.get(name)

    def _prepare(
        self,
        principal: Principal,
        name: str,
        data: bytes,
        groups: list[str],
        tags: list[str],
        title: str | None,
        existing: Document | None,
    ) -> _Prepared | IngestResult:
        """Parse and chunk one file; decide whether it is new, changed or unchanged. Stores nothing."""
        try:
            max_bytes = int(self.settings.knowledge.max_file_mb * 1024 * 1024)
            digest = content_hash(data)
            if existing is not None and existing.live_version and existing.content_hash == digest:
                if sorted(existing.groups) != groups:
                    self.set_groups(principal, existing.id, groups)
                    return IngestResult(name, "regrouped", existing.id, existing.live_version)
                return IngestResult(name, "unchanged", existing.id, existing.live_version)
            parsed = parse_document(name, data, max_bytes=max_bytes)
            chunks = chunk_document(
                parsed,
                max_tokens=self.settings.knowledge.chunk_max_tokens,
                overlap_tokens=self.settings.knowledge.chunk_overlap_tokens,
                count_tokens=getattr(self.embedder, "count_tokens", None) or _default_counter(),
            )
            if not chunks:
                raise InvalidInputError(f"{name} contains no text to index.", hint="Check that the file is not empty.")
        except FlywheelError as exc:
            return IngestResult(name, "failed", error=str(exc))
        prepared = _Prepared(
            name,
            digest,
            len(data),
            parsed,
            chunks,
            groups,
            tags,
            title or parsed.title,
            existing,
            owner=principal.user,
            language=detect_language(" ".join(b.text for b in parsed.blocks)),
        )
        prepared.result = IngestResult(name, "updated" if existing and existing.live_version else "added")
        return prepared

    def _commit(self, batch: list[_Prepared], progress: ProgressCallback | None) -> None:
        """Pending versions → embeddings → one index commit → ready versions."""
        begun = self.catalog.begin_versions(
            [
                dict(
                    document_id=item.existing.id if item.existing else None,
                    owner=item.owner,
                    source=item.source,
                    **self._document_fields(item),
                )
                for item in batch
            ]
        )
        for item, (doc_id, version) in zip(batch, begun, strict=True):
            item.doc_id, item.version = doc_id, version
        try:
            vectors = self.embedder.embed([chunk.text for item in batch for chunk in item.chunks])
            rows: list[dict[str, Any]] = []
            for item in batch:
                rows += [self._row(item, chunk, vectors[len(rows) + i]) for i, chunk in enumerate(item.chunks)]
            self.index.replace_documents([item.doc_id for item in batch], rows)
        except FlywheelError as exc:
            for item in batch:
                self.catalog.fail_version(item.doc_id, item.version, exc.message)
                item.result.status, item.result.error = "failed", str(exc)
            return
        self.catalog.finish_versions(
            [
                dict(
                    document_id=item.doc_id,
                    version=item.version,
                    chunk_count=len(item.chunks),
                    **self._document_fields(item),
                )
                for item in batch
            ]
        )
        for item in batch:
            item.result.doc_id, item.result.version, item.result.chunks = item.doc_id, item.version, len(item.chunks)
            if progress:
                progress(item.source, len(item.chunks))

    @staticmethod
    def _document_fields(item: _Prepared) -> dict[str, Any]:
        return {
            "title": item.title,
            "groups": item.groups,
            "tags": item.tags,
            "media_type": item.parsed.media_type,
            "size_bytes": item.size,
            "content_hash": item.data_hash,
        }

    @staticmethod
    def _row(item: _Prepared, chunk: Chunk, vector: Any) -> dict[str, Any]:
        return {
            "chunk_id": f"{item.doc_id}:{item.version}:{chunk.ordinal}",
            "doc_id": item.doc_id,
            "version": item.version,
            "ordinal": chunk.ordinal,
            "text": chunk.text,
            "title": item.title,
            "source": item.source,
            "page": chunk.page,
            "page_end": chunk.page_end,
            "section": chunk.section,
            "groups": item.groups,
            "tags": item.tags,
            "vector": vector,
            **chunk_language_fields(chunk.text, item.language),
        }

    # --- reading -------------------------------------------------------------------------------

    def search(
        self,
        principal: Principal,
        query: str,
        *,
        k: int = 5,
        mode: SearchMode = "hybrid",
        metadata: MetadataFilter | None = None,
        fusion: Fusion = "score",
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query`` among those ``principal`` may read."""
        if not query or not query.strip():
            raise InvalidInputError("The search query is empty.", hint="Type a question or some keywords.")
        vector = embed_query(self.embedder, query) if mode != "text" else None
        return self.index.search(principal, vector=vector, text=query, k=k, mode=mode, metadata=metadata, fusion=fusion)

    def list_documents(self, principal: Principal) -> list[Document]:
        """Documents the principal may read (admins see every document's metadata, to manage it)."""
        return [d for d in self.catalog.list_documents() if principal.is_admin or principal.can_read(d.groups)]

    def document(self, principal: Principal, document_id: str) -> Document:
        doc = self.catalog.get_document(document_id)
        if not (principal.is_admin or principal.can_read(doc.groups)):
            # Indistinguishable from a missing document: existence is not disclosed.
            raise NotFoundError(f"No document with id {document_id!r}.", hint="See `flywheel docs list`.")
        return doc

    def document_text(self, principal: Principal, document_id: str) -> tuple[Document, list[Hit]]:
        """A readable document and its chunks in order. Reading passages needs one of the document's
        groups (admins included, as in search); otherwise it is indistinguishable from a missing one."""
        doc = self.catalog.get_document(document_id)
        chunks = self.index.read_document(principal, document_id) if principal.can_read(doc.groups) else []
        if not chunks:
            raise NotFoundError(
                f"No document with id {document_id!r} that you may read.",
                hint="List your documents with `flywheel docs list` or the list_documents tool.",
            )
        return doc, chunks

    # --- access management -----------------------------------------------------------------------

    def set_groups(self, principal: Principal, document_id: str, groups: Sequence[str]) -> Document:
        """Share a document with exactly ``groups``; effective for the next query."""
        doc = self.document(principal, document_id)
        principal.require_manage(doc.owner, f"change the groups of {doc.source}")
        groups = self.catalog.require_groups(list(groups))
        principal.require_member(set(groups) - set(doc.groups))  # may only add groups one belongs to
        # The index first: it is what enforces access, so a crash between the two writes can leave the
        # catalog showing the old groups (the same call again fixes it), never a revoked group still reading.
        self.index.set_groups(doc.id, groups)
        self.catalog.set_groups(doc.id, groups)
        return self.catalog.get_document(doc.id)

    def grant(self, principal: Principal, document_id: str, groups: Sequence[str]) -> Document:
        doc = self.document(principal, document_id)
        return self.set_groups(principal, document_id, sorted(set(doc.groups) | set(groups)))

    def revoke(self, principal: Principal, document_id: str, groups: Sequence[str]) -> Document:
        doc = self.document(principal, document_id)
        remaining = sorted(set(doc.groups) - set(groups))
        if not remaining:
            raise InvalidInputError(
                f"Revoking {', '.join(groups)} would leave {doc.source} shared with nobody.",
                hint="Delete the document instead (`flywheel docs rm`), or grant another group first.",
            )
        return self.set_groups(principal, document_id, remaining)

    def delete(self, principal: Principal, document_id: str) -> Document:
        """Remove a document and all its chunks (owner or admin)."""
        doc = self.document(principal, document_id)
        principal.require_manage(doc.owner, f"delete {doc.source}")
        self.index.delete_document(doc.id)
        self.catalog.delete_document(doc.id)
        return doc


def chunk_language_fields(text: str, language: str) -> dict[str, str | None]:
    """The index columns for a chunk of a document in ``language``: a segmented copy for CJK only."""
    return {LANGUAGE: language, SEGMENTED: segment(text) if language in CJK_LANGUAGES else None}


def embed_query(embedder: Embedder, query: str) -> Any:
    """A search query's vector: embedders that embed queries differently from passages (E5) say so."""
    embed = getattr(embedder, "embed_query", None)
    return embed([query])[0] if embed is not None else embedder.embed([query])[0]


def _default_counter() -> Callable[[str], int]:
    return count_tokens_approx


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the supported files inside folders (sorted, hidden files skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.exists():
            files.append(path)
        else:
            raise NotFoundError(f"{path} does not exist.", hint="Check the path.")
    return files


def _read_files(paths: Iterable[Path]) -> Iterable[tuple[str, bytes]]:
    for path in paths:
        yield path.name, path.read_bytes()
