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
