"""Rebuild the chunk index with the configured embedder (``flywheel docs reindex``).

Vectors of two embedders cannot be compared, so changing ``embedder.model`` means re-embedding
every chunk. The chunk texts and metadata are already in the index, so documents are not parsed
again: rows are read from the live table, re-embedded (and their language detected and CJK text
segmented again, which also upgrades indexes from before CJK support) into a staging table, which
then replaces the live one. The live table is untouched until the staging table is complete; a
run interrupted during the swap is finished by the next run. Stop the service (and uploads)
while it runs: writes made meanwhile would be lost, and searches fail during the short swap.

Why a command and not an automatic re-embed at start-up: on a large index it takes hours, every
process opening the index would race to do it, and a mistyped setting would silently throw away
a good index. The service refuses to start with a mismatched index and names this command.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from flywheel.knowledge.base import chunk_language_fields
from flywheel.knowledge.embed import Embedder
from flywheel.knowledge.index import EMBEDDER_TAG, LANGUAGE, TABLE, ChunkIndex, chunk_schema
from flywheel.knowledge.language import detect_language
from flywheel.storage import write_errors

STAGING = f"{TABLE}_reindex"
COMPLETE_TAG = "flywheel:reindex"  # on the staging table's vector column once every row is in it
_VECTORLESS = (
    "chunk_id",
    "doc_id",
    "version",
    "ordinal",
    "text",
    "title",
    "source",
    "page",
    "page_end",
    "section",
    "groups",
    "tags",
)

ReindexProgress = Callable[[int, int], None]  # (chunks done, chunks in all)


@dataclass(frozen=True)
class ReindexResult:
    chunks: int
    previous_embedder: str | None
    embedder: str


def reindex(
    uri: str,
    embedder: Embedder,
    *,
    batch_size: int = 256,
    ann_min_rows: int = 50_000,
    progress: ReindexProgress | None = None,
) -> ReindexResult:
    """Re-embed every chunk of the index at ``uri`` with ``embedder`` and make that the live index."""
    import lancedb

    db = lancedb.connect(uri)
    names = set(db.table_names())
    previous: str | None = None
    if TABLE in names:
        live = db.open_table(TABLE)
        previous = _tag(live, EMBEDDER_TAG)
        if STAGING in names:
            db.drop_table(STAGING)  # an unfinished earlier run: start over from the live table
        staging = _build_staging(db, live, embedder, batch_size, progress)
        with write_errors(uri):
            db.drop_table(TABLE)
    elif STAGING in names and _tag(db.open_table(STAGING), COMPLETE_TAG) == "complete":
        staging = db.open_table(STAGING)  # the previous run stopped between dropping and re-creating
    else:
        staging = None
    chunks = 0
    if staging is not None:
        data = staging.to_arrow()
        with write_errors(uri):
            table = db.create_table(TABLE, data=data, schema=data.schema)
            table.update_field_metadata(
                {"path": "vector", "metadata": {EMBEDDER_TAG: embedder.name, COMPLETE_TAG: None}}
            )
            db.drop_table(STAGING)
        chunks = data.num_rows
    index = ChunkIndex(uri, embedder.dimensions, ann_min_rows=ann_min_rows, embedder=embedder.name)
    index.ensure_indexes()
    return ReindexResult(chunks=chunks, previous_embedder=previous, embedder=embedder.name)


def _build_staging(db: Any, live: Any, embedder: Embedder, batch_size: int, progress: ReindexProgress | None) -> Any:
    schema = chunk_schema(embedder.dimensions)
    columns = [c for c in (*_VECTORLESS, LANGUAGE) if c in live.schema.names]
    total = live.count_rows()
    rows = live.search().select(columns).limit(max(total, 1)).to_arrow().to_pylist() if total else []
    languages = _document_languages(rows)
    staging = db.create_table(STAGING, schema=schema)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        vectors = embedder.embed([row["text"] for row in batch])
        out = []
        for row, vector in zip(batch, vectors, strict=True):
            record = {name: row.get(name) for name in _VECTORLESS}
            record.update(vector=vector, **chunk_language_fields(row["text"], languages[row["doc_id"]]))
            out.append(record)
        staging.add(pa.Table.from_pylist(out, schema=schema))
        if progress:
            progress(start + len(batch), len(rows))
    staging.update_field_metadata(
        {"path": "vector", "metadata": {EMBEDDER_TAG: embedder.name, COMPLETE_TAG: "complete"}}
    )
    return staging


def _document_languages(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The recorded language of each document, or one detected from all its chunks (older indexes)."""
    texts: dict[str, list[str]] = defaultdict(list)
    recorded: dict[str, str] = {}
    for row in rows:
        texts[row["doc_id"]].append(row["text"])
        if row.get(LANGUAGE):
            recorded[row["doc_id"]] = row[LANGUAGE]
    return {doc: recorded.get(doc) or detect_language(" ".join(parts)) for doc, parts in texts.items()}


def _tag(table: Any, key: str) -> str | None:
    value = (table.schema.field("vector").metadata or {}).get(key.encode())
    return value.decode() if value else None
