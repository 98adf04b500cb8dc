"""Many small documents in one ingestion: catalog entries, versions and per-document ACL rows stay exact
across catalog batches, index commits and document look-ups that each cover many files."""

from __future__ import annotations

from flywheel.config import load_settings
from flywheel.knowledge.base import KnowledgeBase
from tests.unit.serve_helpers import HashEmbedder


def files(n: int, word: str = "torque") -> list[tuple[str, bytes]]:
    return [
        (f"note-{i:03d}.txt", f"Note {i}: check the {word} of bolt {i} after every flight.".encode()) for i in range(n)
    ]


def test_many_small_documents_are_each_recorded_and_readable_only_by_their_groups() -> None:
    settings = load_settings(knowledge={"batch_chunks": 16})  # several batches; > 64 files per look-up
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.catalog.add_user("bob", ["pilots"])
    alice, bob = kb.principal("alice"), kb.principal("bob")

    results = kb.ingest_files(alice, files(150), groups=["mechanics"])
    assert [r.status for r in results] == ["added"] * 150
    docs = {d.source: d for d in kb.catalog.list_documents()}
    assert len(docs) == 150 and len({r.doc_id for r in results}) == 150
    for result in results:
        doc = docs[result.source]
        assert (doc.id, doc.live_version, doc.groups, doc.status) == (result.doc_id, 1, ["mechanics"], "ready")
        assert [v.chunk_count for v in doc.versions] == [result.chunks] == [1]
    assert kb.index.count() == 150
    assert kb.search(alice, "torque bolt 7", k=3) and not kb.search(bob, "torque bolt 7", k=3)

    again = kb.ingest_files(alice, files(150), groups=["mechanics"])
    assert {r.status for r in again} == {"unchanged"}
    changed = kb.ingest_files(alice, files(3, "brakes") + files(150)[3:], groups=["mechanics"])
    assert [r.status for r in changed[:4]] == ["updated", "updated", "updated", "unchanged"]
    assert kb.catalog.get_document(changed[0].doc_id).live_version == 2
    assert kb.index.count() == 150  # the old versions' chunks were replaced, not added to


def test_a_knowledge_base_built_by_many_small_uploads_keeps_its_rows_indexed() -> None:
    """Each upload of a small KB is folded into the indexes once it adds a tenth of the rows (before, new
    rows waited for 1000 of them: the sample KB searched 429 of its 437 rows outside the indexes)."""
    kb = KnowledgeBase(load_settings(), embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    alice = kb.principal("alice")
    for upload in range(6):
        kb.ingest_files(
            alice,
            [(f"manual-{upload}.txt", f"Manual {upload}: torque of bolt {upload}.".encode())],
            groups=["mechanics"],
        )
    text_index = next(i for i in kb.index.table.list_indices() if list(i.columns) == ["text"])
    stats = kb.index.table.index_stats(text_index.name)
    assert stats is not None and stats.num_unindexed_rows <= stats.num_indexed_rows // 10
    assert stats.num_indexed_rows + stats.num_unindexed_rows == kb.index.count() == 6
    assert [h.text for h in kb.search(alice, "torque of bolt 4", k=1)] == ["Manual 4: torque of bolt 4."]


def test_folding_waits_for_a_tenth_of_the_indexed_rows() -> None:
    from flywheel.knowledge.index import needs_folding

    assert needs_folding(8, 12) and needs_folding(0, 1) and needs_folding(10_000, 1_000)
    assert not needs_folding(10_000, 999) and not needs_folding(500, 0)
