"""The chunk index: LanceDB with vectors, a full-text index and the ACL column.

Every read goes through :meth:`ChunkIndex.search`, which requires a principal and puts the ACL
predicate inside each LanceDB query (a prefilter, :mod:`.queries`): vector and BM25 candidates are
drawn only from rows the principal may read, then fused by their normalised scores. A document's chunks are
replaced in one LanceDB commit (``merge_insert`` that inserts the new version's rows and deletes
the old ones), so a concurrent reader sees the old version or the new one, never a mix or nothing.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from flywheel.access import AclFilter, Principal
from flywheel.errors import EmbedderMismatchError, InvalidInputError, StorageError
from flywheel.knowledge.ann import AnnSearch, partitions_for
from flywheel.knowledge.embed import E5_MULTILINGUAL, USE_MULTILINGUAL
from flywheel.knowledge.language import has_cjk, segment
from flywheel.knowledge.queries import TextQuery, VectorQuery, run_queries
from flywheel.storage import write_errors

if TYPE_CHECKING:
    from lancedb.table import Table

TABLE = "chunks"
SearchMode = Literal["hybrid", "vector", "text"]
# Weight of each ranked list in the fusion; full text counts double (see `fuse`).
DEFAULT_WEIGHTS = {"text": 1.0, "vector": 0.5}
RRF_K = 60
Fusion = Literal["score", "rank"]
# The word-split copy of CJK chunks that full-text search reads (null for other chunks), and the
# language detected for the chunk's document. Indexes built before these columns get them added
# on their next write; their older CJK rows need `flywheel docs reindex` to become keyword-searchable.
SEGMENTED = "text_segmented"
LANGUAGE = "language"
_CJK_FIELDS = (pa.field(LANGUAGE, pa.string()), pa.field(SEGMENTED, pa.string()))
_NOT_RETURNED = frozenset({"vector", SEGMENTED, "tags"})  # columns searches do not hand back
# Which embedder made the vectors: a tag on the vector column (LanceDB's field-metadata convention).
EMBEDDER_TAG = "lancedb:tag:model"
# Embedders that only exist since indexes record their embedder: an index without a record
# cannot have been built by them.
RECORDED_SINCE_ADDED = frozenset({USE_MULTILINGUAL, E5_MULTILINGUAL})


def chunk_schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("version", pa.int32(), nullable=False),
            pa.field("ordinal", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("title", pa.string()),
            pa.field("source", pa.string()),
            pa.field("page", pa.int32()),
            pa.field("page_end", pa.int32()),
            pa.field("section", pa.string()),
            pa.field("groups", pa.list_(pa.string()), nullable=False),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("vector", pa.list_(pa.float32(), dimensions), nullable=False),
            *_CJK_FIELDS,
        ]
    )


def quote(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class MetadataFilter:
    """Optional narrowing of a search; rendered to SQL here, never taken as raw SQL from a caller."""

    tags: tuple[str, ...] = ()  # any of these tags
    documents: tuple[str, ...] = ()  # any of these document ids
    sources: tuple[str, ...] = ()  # any of these file names
    exclude_documents: tuple[str, ...] = ()  # none of these document ids

    def sql(self) -> str | None:
        parts = []
        if self.tags:
            parts.append(f"array_has_any(tags, make_array({', '.join(quote(t) for t in self.tags)}))")
        if self.documents:
            parts.append(f"doc_id IN ({', '.join(quote(d) for d in self.documents)})")
        if self.sources:
            parts.append(f"source IN ({', '.join(quote(s) for s in self.sources)})")
        if self.exclude_documents:
            parts.append(f"doc_id NOT IN ({', '.join(quote(d) for d in self.exclude_documents)})")
        return " AND ".join(parts) or None


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, with where it came from (for citations) and why it ranked."""

    chunk_id: str
    doc_id: str
    text: str
    title: str
    source: str
    page: int | None
    page_end: int | None
    section: str | None
    groups: tuple[str, ...]
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    # Raw, comparable-across-queries signals per list: cosine similarity ("vector"), BM25 ("text").
    relevance: dict[str, float] = field(default_factory=dict)
    language: str | None = None  # detected for the document: ja, zh, ko or und (None: indexed before)

    def citation(self) -> str:
        """e.g. ``manual.pdf p. 12 §3.2 Oil servicing``."""
        parts = [self.source]
        if self.page:
            parts.append(
                f"p. {self.page}"
                if not self.page_end or self.page_end == self.page
                else f"pp. {self.page}–{self.page_end}"
            )
        if self.section:
            parts.append(f"§{self.section.split(' > ')[-1]}")
        return " ".join(parts)


class ChunkIndex:
    """The LanceDB table of chunks (local path or object-storage URI)."""

    def __init__(
        self,
        uri: str,
        dimensions: int,
        *,
        ann_min_rows: int = 50_000,
        nprobes: int | None = None,
        refine_factor: int = 2,
        ef: int = 64,
        embedder: str | None = None,
    ) -> None:
        import lancedb

        self.uri = uri
        self.dimensions = dimensions
        self.ann_min_rows = ann_min_rows
        # ANN search breadth: partitions probed (None: scaled to the index, see ann.py), HNSW list size,
        # and full-precision re-ranking of refine_factor × k candidates (the index stores 8-bit vectors).
        self.nprobes, self.refine_factor, self.ef = nprobes, refine_factor, ef
        self._ann: AnnSearch | None = None
        self._ann_indexed: int | None = None
        self._ann_checked = 0.0
        self._result_columns: list[str] | None = None
        self._write_lock = threading.Lock()
        try:
            self.db = lancedb.connect(uri)
            # An existing table keeps its schema (one from before CJK support gets the new columns on
            # its next write); only a new table is created with the current one.
            self.table: Table = (
                self.db.open_table(TABLE)
                if TABLE in self.db.table_names()
                else self.db.create_table(TABLE, schema=chunk_schema(dimensions), exist_ok=True)
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise StorageError(
                f"Cannot open the vector index at {uri}: {exc}",
                hint="Check FLYWHEEL_KNOWLEDGE__INDEX_URI and that the location is writable.",
            ) from exc
        recorded = self.built_with()
        if embedder is not None and recorded is not None and recorded != embedder:
            raise self._mismatch(recorded, embedder)
        width = self.table.schema.field("vector").type.list_size
        if width != dimensions:
            raise EmbedderMismatchError(
                f"The index at {uri} holds {width}-d vectors but the embedder makes {dimensions}-d ones.",
                hint="Re-embed every chunk with the configured embedder: `flywheel docs reindex`, or use the "
                "embedder the index was built with, or point FLYWHEEL_KNOWLEDGE__INDEX_URI elsewhere.",
            )
        if embedder is not None:
            self.check_embedder(embedder)

    # --- the embedder that built the vectors ------------------------------------------------------

    def built_with(self) -> str | None:
        """The embedder recorded on the vector column (None: an index from before it was recorded)."""
        metadata = self.table.schema.field("vector").metadata or {}
        value = metadata.get(EMBEDDER_TAG.encode())
        return value.decode() if value else None

    def record_embedder(self, name: str) -> None:
        """Record ``name`` on the vector column. Another process recording at the same moment (the
        processes of `flywheel serve --workers N` opening a new index) makes LanceDB refuse this commit
        as an incompatible concurrent transaction: then the latest version is read, and an index that
        already records ``name`` is what was wanted."""
        with self._write_lock:
            for _attempt in range(3):
                try:
                    with write_errors(self.uri):
                        self.table.update_field_metadata({"path": "vector", "metadata": {EMBEDDER_TAG: name}})
                    return
                except StorageError as exc:
                    if "Incompatible transaction" not in str(exc):
                        raise
                    self.table = self.db.open_table(TABLE)  # the version the other writer committed
                    recorded = self.built_with()
                    if recorded == name:
                        return
                    if recorded is not None:
                        raise self._mismatch(recorded, name) from exc
            raise StorageError(
                f"Could not record the embedder on the index at {self.uri}: other writers kept changing it.",
                hint="Retry; if it persists, stop the other processes writing this index.",
            )

    def check_embedder(self, name: str) -> None:
        """Refuse to mix vectors of two embedders; record ``name`` on an index that has no record yet."""
        recorded = self.built_with()
        if recorded is None and (self.count() == 0 or name not in RECORDED_SINCE_ADDED):
            self.record_embedder(name)  # new, or built before the record by this (same-size) embedder
            return
        if recorded != name:
            raise self._mismatch(recorded, name)

    def _mismatch(self, recorded: str | None, name: str) -> EmbedderMismatchError:
        return EmbedderMismatchError(
            f"The index at {self.uri} was built with the embedder {recorded or 'all-MiniLM-L6-v2 (unrecorded)'}, "
            f"but the configured embedder is {name}: their vectors cannot be compared.",
            hint="Re-embed every chunk with the configured embedder: `flywheel docs reindex` (stop the service "
            "first), or set FLYWHEEL_EMBEDDER__MODEL back to the embedder the index was built with.",
        )

    @property
    def has_segmented_text(self) -> bool:
        return SEGMENTED in self.table.schema.names

    def add_missing_columns(self) -> None:
        """Give an index from before CJK support its language and segmented-text columns (empty)."""
        missing = [f for f in _CJK_FIELDS if f.name not in self.table.schema.names]
        if missing:
            self.table.add_columns(missing)
            self._result_columns = None

    @property
    def result_columns(self) -> list[str]:
        """The columns a search returns: everything a :class:`Hit` reads, not the vector (converting
        40 rows of 384 floats to Python lists took about 2 ms of each search's CPU)."""
        if self._result_columns is None:
            self._result_columns = [name for name in self.table.schema.names if name not in _NOT_RETURNED]
        return self._result_columns

    # --- writes -----------------------------------------------------------------------------

    def replace_documents(self, doc_ids: Sequence[str], rows: list[dict[str, Any]]) -> None:
        """Make ``rows`` the only chunks of the documents ``doc_ids``, in one atomic commit."""
        if not rows or not doc_ids:
            raise InvalidInputError("Nothing to index: the documents produced no chunks.")
        scope = f"doc_id IN ({', '.join(quote(d) for d in doc_ids)})"
        with self._write_lock, write_errors(self.uri):
            self.add_missing_columns()
            data = pa.Table.from_pylist(rows, schema=self.table.schema)
            (
                self.table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(scope)
                .execute(data)
            )

    def delete_document(self, doc_id: str) -> None:
        with self._write_lock, write_errors(self.uri):
            self.table.delete(f"doc_id = {quote(doc_id)}")

    def set_groups(self, doc_id: str, groups: Sequence[str]) -> None:
        """Share a document's chunks with exactly ``groups`` (one commit; the next query sees it)."""
        with self._write_lock, write_errors(self.uri):
            self.table.update(where=f"doc_id = {quote(doc_id)}", values={"groups": list(groups)})

    def count(self) -> int:
        return self.table.count_rows()

    def ensure_indexes(self) -> None:
        """Create missing indexes; fold new rows into existing ones once enough have accumulated.

        Rows not yet indexed are still searched (exhaustively), so this is about speed, never about
        what a query can find. New rows are folded in (``optimize``: the indexes extended, small
        files compacted) once they reach a tenth of the indexed rows, so a bulk import optimizes a
        logarithmic number of times, and a small knowledge base built by many small uploads does not
        stay unindexed: the sample KB (36 uploads) had 429 of 437 rows outside its indexes, in 38
        files, which made each hybrid search cost about 3x its CPU (:func:`needs_folding`).
        """
        rows = self.count()
        if rows == 0:
            return
        indexes = {tuple(i.columns): i for i in self.table.list_indices()}
        with self._write_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LanceDB's deprecation notices for the stable index calls
            if ("text",) not in indexes:
                self.table.create_fts_index("text", replace=True)
            if self.has_segmented_text and (SEGMENTED,) not in indexes:
                self.table.create_fts_index(SEGMENTED, replace=True)
            if ("groups",) not in indexes:
                self.table.create_scalar_index("groups", index_type="LABEL_LIST")
            if ("doc_id",) not in indexes:
                self.table.create_scalar_index("doc_id", index_type="BTREE")
            if rows >= self.ann_min_rows and ("vector",) not in indexes:
                self.build_ann_index(rows)
            elif ("text",) in indexes:
                stats = self.table.index_stats(indexes[("text",)].name)
                if stats and needs_folding(stats.num_indexed_rows, stats.num_unindexed_rows):
                    self.table.optimize()  # incremental: appends new rows to every index, compacts files

    def build_ann_index(self, rows: int | None = None) -> None:
        """IVF-HNSW-SQ with cosine distance, partitions scaled to the table (ann.py)."""
        rows = rows or self.count()
        self.table.create_index(
            metric="cosine",
            index_type="IVF_HNSW_SQ",
            num_partitions=partitions_for(rows),
            replace=True,
        )
        self._ann = None

    @property
    def ann(self) -> AnnSearch:
        """ANN query breadth scaled to the rows the vector index was built over (read once)."""
        if self._ann is None or (self._ann_indexed is None and time.monotonic() > self._ann_checked + 60):
            # No vector index yet (search is exhaustive): another process may build one; look again in a minute.
            indexed = next(
                (i.num_indexed_rows for i in self.table.list_indices() if list(i.columns) == ["vector"]), None
            )
            self._ann = AnnSearch.scaled(
                indexed or 0, refine_factor=self.refine_factor, ef=self.ef, nprobes=self.nprobes
            )
            self._ann_indexed, self._ann_checked = indexed, time.monotonic()
        return self._ann

    def warm(self, principal: Principal | None = None, *, queries: int = 8) -> float:
        """Read the vector index (every IVF partition) and, with ``principal``, its ACL filter's index into
        LanceDB's cache, so the first searches after opening do not pay those reads; seconds taken.
        Nothing to do (0.0) while the table has no vector index (search is then exhaustive anyway)."""
        started = time.perf_counter()
        ann = self.ann  # also reads how many rows the vector index holds
        if self._ann_indexed is None:
            return 0.0
        sample = self.table.search().select(["vector"]).limit(queries).to_list()
        everything = max(ann.nprobes, partitions_for(self._ann_indexed))
        for row in sample:
            query = self.table.search(np.asarray(row["vector"], dtype=np.float32), vector_column_name="vector")
            query = query.distance_type("cosine").limit(10).nprobes(everything)
            if principal is not None:
                query = query.where(AclFilter.for_principal(principal), prefilter=True)
            query.to_list()
        return time.perf_counter() - started

    # --- reads --------------------------------------------------------------------------------

    def search(
        self,
        principal: Principal,
        *,
        vector: np.ndarray | None = None,
        text: str | None = None,
        k: int = 5,
        mode: SearchMode = "hybrid",
        metadata: MetadataFilter | None = None,
        candidates: int = 40,
        exact: bool = False,
        fusion: Fusion = "score",
    ) -> list[Hit]:
        """Top-``k`` chunks the principal may read. The ACL is inside every query, never applied after."""
        if not isinstance(principal, Principal):
            raise TypeError("search requires a Principal")
        where = AclFilter.combine(AclFilter.for_principal(principal), metadata.sql() if metadata else None)
        pool = max(candidates, k)
        queries: dict[str, Sequence[VectorQuery | TextQuery]] = {}
        if mode in ("hybrid", "vector"):
            if vector is None:
                raise ValueError("vector search needs a query vector")
            if exact:
                queries["vector"] = [VectorQuery(vector, pool, exact=True)]
            else:
                ann = self.ann
                queries["vector"] = [VectorQuery(vector, pool, False, ann.nprobes, ann.refine_factor, ann.ef_for(pool))]
        if mode in ("hybrid", "text") and text and text.strip():
            queries["text"] = self._keyword_queries(text, pool)
        ranked = run_queries(self.table, where, self.result_columns, queries)
        if len(queries.get("text", ())) > 1:
            ranked["text"] = _best_per_chunk(ranked["text"], pool)
        return fuse(ranked, k, fusion=fusion)

    def _keyword_queries(self, text: str, limit: int) -> list[TextQuery]:
        """A query with CJK characters is word-split like CJK chunks were (``segment``) and also
        searched in their segmented copy; the two lists are merged by score (:func:`_best_per_chunk`)."""
        if not has_cjk(text):
            return [TextQuery(text, "text", limit)]
        words = segment(text)
        queries = [TextQuery(words, "text", limit)]
        if self.has_segmented_text:
            queries.append(TextQuery(words, SEGMENTED, limit))
        return queries

    def read_document(self, principal: Principal, doc_id: str, *, limit: int = 5000) -> list[Hit]:
        """A document's chunks in reading order, only if the principal may read them (ACL in the query)."""
        if not isinstance(principal, Principal):
            raise TypeError("read_document requires a Principal")
        where = AclFilter.combine(AclFilter.for_principal(principal), f"doc_id = {quote(doc_id)}")
        rows = self.table.search().where(where).limit(limit).to_list()
        rows.sort(key=lambda row: row["ordinal"])
        return [
            Hit(
                chunk_id=r["chunk_id"],
                doc_id=r["doc_id"],
                text=r["text"],
                title=r.get("title") or "",
                source=r.get("source") or "",
                page=r.get("page"),
                page_end=r.get("page_end"),
                section=r.get("section"),
                groups=tuple(r.get("groups") or ()),
                score=0.0,
                language=r.get(LANGUAGE),
            )
            for r in rows
        ]


def _best_per_chunk(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Each chunk once, with its best BM25 score, best first."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["chunk_id"] not in best or row["_score"] > best[row["chunk_id"]]["_score"]:
            best[row["chunk_id"]] = row
    return sorted(best.values(), key=lambda row: -row["_score"])[:limit]


def needs_folding(indexed: int, unindexed: int) -> bool:
    """Whether rows written since the indexes were last extended are worth folding in now: at least a
    tenth of the indexed rows (geometric steps keep bulk imports linear). Before, the bar was at
    least 1000 rows, which a small knowledge base never reaches."""
    return unindexed > 0 and unindexed >= indexed // 10


def _relevance(row: dict[str, Any]) -> float:
    """Higher is better: cosine similarity for vector hits, BM25 score for full-text hits."""
    return 1.0 - float(row["_distance"]) if "_distance" in row else float(row.get("_score", 0.0))


def fuse(
    ranked: dict[str, list[dict[str, Any]]], k: int, weights: dict[str, float] | None = None, fusion: Fusion = "score"
) -> list[Hit]:
    """Relative score fusion: min-max normalise each list's scores, add them with weights, keep the top k.

    Unlike reciprocal-rank fusion it keeps *how much* better a result is, so a strong BM25 match is
    not diluted by a mediocre vector list (measured on wiki_qa in docs/benchmarks.md).
    """
    weights = weights or DEFAULT_WEIGHTS
    if fusion == "rank":  # reciprocal-rank fusion: every list counts equally, by rank only
        weights = {name: 1.0 for name in ranked}
    scores: dict[str, float] = {}
    rows: dict[str, dict[str, Any]] = {}
    ranks: dict[str, dict[str, int]] = {}
    raw: dict[str, dict[str, float]] = {}
    for name, results in ranked.items():
        if not results:
            continue
        values = [_relevance(row) for row in results]
        low, high = min(values), max(values)
        for rank, (row, value) in enumerate(zip(results, values, strict=True), start=1):
            chunk_id = row["chunk_id"]
            rows.setdefault(chunk_id, row)
            ranks.setdefault(chunk_id, {})[name] = rank
            raw.setdefault(chunk_id, {})[name] = value
            if fusion == "rank":
                contribution = 1.0 / (RRF_K + rank)
            else:
                contribution = (value - low) / (high - low) if high > low else 1.0
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weights.get(name, 1.0) * contribution
    best = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
    return [
        Hit(
            chunk_id=cid,
            doc_id=rows[cid]["doc_id"],
            text=rows[cid]["text"],
            title=rows[cid].get("title") or "",
            source=rows[cid].get("source") or "",
            page=rows[cid].get("page"),
            page_end=rows[cid].get("page_end"),
            section=rows[cid].get("section"),
            groups=tuple(rows[cid].get("groups") or ()),
            score=scores[cid],
            ranks=ranks[cid],
            relevance=raw[cid],
            language=rows[cid].get(LANGUAGE),
        )
        for cid in best
    ]
