"""Ingestion lifecycle against real LanceDB, SQLite and the real embedder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.errors import AccessDeniedError, InvalidInputError, NotFoundError
from flywheel.knowledge.base import KnowledgeBase
from flywheel.knowledge.index import MetadataFilter

OIL_V1 = """# Engine oil servicing

## 1 Scope
This task card covers oil servicing of the PW127M engine on the ATR 72-600.

## 2 Procedure
Wait at least 5 minutes and no more than 30 minutes after shutdown. Check the sight gauge.
Add Mobil Jet Oil II until the level reaches the FULL mark. Record the quantity added.
"""
OIL_V2 = OIL_V1.replace("Mobil Jet Oil II", "Aeroshell Turbine Oil 560") + "\n## 3 Records\nLog it in the tech log.\n"


@pytest.fixture
def kb() -> KnowledgeBase:
    kb = KnowledgeBase(load_settings())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.catalog.add_user("bob", ["pilots"])
    kb.catalog.add_user("erin", ["mechanics", "pilots"])
    kb.catalog.add_user("root", is_admin=True)
    return kb


def doc_chunks(kb: KnowledgeBase, doc_id: str) -> list[dict]:
    rows = kb.index.table.search().where(f"doc_id = '{doc_id}'").limit(None).to_list()
    return sorted(rows, key=lambda r: r["ordinal"])


def test_reingesting_unchanged_content_is_a_no_op(kb: KnowledgeBase) -> None:
    alice = kb.principal("alice")
    first = kb.ingest_files(alice, [("oil.md", OIL_V1.encode())], groups=["mechanics"])
    assert first[0].status == "added" and first[0].chunks > 0
    version_before = kb.index.table.version
    again = kb.ingest_files(alice, [("oil.md", OIL_V1.encode())], groups=["mechanics"])
    assert again[0].status == "unchanged"
    assert again[0].doc_id == first[0].doc_id
    assert kb.index.table.version == version_before  # not a single write
    assert kb.catalog.get_document(first[0].doc_id).live_version == 1


def test_changed_content_replaces_the_old_chunks(kb: KnowledgeBase) -> None:
    alice = kb.principal("alice")
    doc_id = kb.ingest_files(alice, [("oil.md", OIL_V1.encode())], groups=["mechanics"])[0].doc_id
    result = kb.ingest_files(alice, [("oil.md", OIL_V2.encode())], groups=["mechanics"])[0]
    assert (result.status, result.doc_id, result.version) == ("updated", doc_id, 2)
    chunks = doc_chunks(kb, doc_id)
    assert {c["version"] for c in chunks} == {2}
    text = " ".join(c["text"] for c in chunks)
    assert "Aeroshell" in text and "Mobil" not in text
    assert [c["ordinal"] for c in chunks] == list(range(len(chunks)))


def test_delete_removes_every_chunk_and_only_owner_or_admin_may(kb: KnowledgeBase) -> None:
    alice = kb.principal("alice")
    doc_id = kb.ingest_files(alice, [("oil.md", OIL_V1.encode())], groups=["mechanics"])[0].doc_id
    with pytest.raises(AccessDeniedError):
        kb.delete(kb.principal("erin"), doc_id)  # may read it, but is not the owner
    with pytest.raises(NotFoundError):
        kb.delete(kb.principal("bob"), doc_id)  # may not even know it exists
    kb.delete(kb.principal("root"), doc_id)
    assert doc_chunks(kb, doc_id) == []
    assert kb.search(alice, "oil servicing sight gauge", k=5) == []
    with pytest.raises(NotFoundError):
        kb.catalog.get_document(doc_id)


def test_group_changes_take_effect_for_the_next_query(kb: KnowledgeBase) -> None:
    alice, bob = kb.principal("alice"), kb.principal("bob")
    doc_id = kb.ingest_files(alice, [("oil.md", OIL_V1.encode())], groups=["mechanics"])[0].doc_id
    assert kb.search(bob, "oil servicing sight gauge") == []
    with pytest.raises(AccessDeniedError, match="not a member of pilots"):
        kb.grant(alice, doc_id, ["pilots"])  # the owner may only share with her own groups
    kb.grant(kb.principal("root"), doc_id, ["pilots"])
    assert {h.doc_id for h in kb.search(bob, "oil servicing sight gauge")} == {doc_id}
    kb.revoke(kb.principal("root"), doc_id, ["pilots"])
    assert kb.search(bob, "oil servicing sight gauge") == []
    with pytest.raises(InvalidInputError, match="shared with nobody"):
        kb.revoke(alice, doc_id, ["mechanics"])


def test_uploading_to_a_group_one_is_not_in_is_refused(kb: KnowledgeBase) -> None:
    with pytest.raises(AccessDeniedError, match="not a member of pilots"):
        kb.ingest_files(kb.principal("alice"), [("oil.md", OIL_V1.encode())], groups=["pilots"])
    assert kb.catalog.list_documents() == []


def test_bad_files_fail_alone_and_change_nothing(kb: KnowledgeBase) -> None:
    alice = kb.principal("alice")
    good = kb.ingest_files(alice, [("oil.md", OIL_V1.encode())], groups=["mechanics"])[0]
    version = kb.index.table.version
    files = [
        ("empty.txt", b""),
        ("binary.txt", b"\x00\x01\x02\xff" * 100),
        ("virus.exe", b"MZ..."),
        ("../escape.md", b"# hi"),
        ("corrupt.pdf", b"%PDF-1.7 garbage"),
        ("brakes.md", b"# Brakes\n\nReplace the brake when the wear pin is flush."),
    ]
    results = kb.ingest_files(alice, files, groups=["mechanics"])
    statuses = {r.source: r.status for r in results}
    assert statuses.pop("brakes.md") == "added"
    assert set(statuses.values()) == {"failed"}
    assert all(r.error for r in results if r.status == "failed")
    assert kb.index.table.version > version  # brakes.md was committed
    assert [c["version"] for c in doc_chunks(kb, good.doc_id)] == [1] * len(doc_chunks(kb, good.doc_id))


def test_metadata_filter_narrows_but_never_widens(kb: KnowledgeBase) -> None:
    alice = kb.principal("alice")
    kb.ingest_files(alice, [("oil.md", OIL_V1.encode())], groups=["mechanics"], tags=["engine"])
    kb.ingest_files(
        kb.principal("bob"),
        [("fuel.md", b"# Fuel policy\n\nCarry 45 minutes reserve.")],
        groups=["pilots"],
        tags=["engine"],
    )
    hits = kb.search(alice, "oil fuel reserve", k=10, metadata=MetadataFilter(tags=("engine",)))
    assert {h.source for h in hits} == {"oil.md"}


def test_a_concurrent_reader_never_sees_a_mix_or_nothing(kb: KnowledgeBase) -> None:
    alice = kb.principal("alice")
    versions = [OIL_V1, OIL_V2, OIL_V1 + "\n## 4 Notes\nNone.\n"]
    doc_id = kb.ingest_files(alice, [("oil.md", versions[0].encode())], groups=["mechanics"])[0].doc_id
    only_this = MetadataFilter(documents=(doc_id,))
    observed: list[set[int]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            rows = kb.index.table.search().where(f"doc_id = '{doc_id}'").limit(None).to_list()
            observed.append({r["version"] for r in rows})
            hits = kb.search(alice, "engine oil servicing", k=50, metadata=only_this, mode="text")
            observed.append({int(h.chunk_id.split(":")[1]) for h in hits})

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 10):
            kb.ingest_files(alice, [("oil.md", versions[i % 3].encode())], groups=["mechanics"])
    finally:
        stop.set()
        reader.join()
    assert len(observed) > 10
    assert all(len(seen) == 1 for seen in observed), [s for s in observed if len(s) != 1][:5]


def test_ann_index_keeps_the_acl(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an ANN index built, the prefilter still confines results to the principal's groups."""
    alice, bob = kb.principal("alice"), kb.principal("bob")
    mech = [
        (f"task-{i}.md", f"# Task {i}\n\nTorque bolt {i} on the oil pump to {i + 20} Nm.".encode()) for i in range(40)
    ]
    pilot = [
        (f"ops-{i}.md", f"# Ops {i}\n\nCheck oil pressure {i + 40} psi before takeoff.".encode()) for i in range(40)
    ]
    kb.ingest_files(alice, mech, groups=["mechanics"])
    kb.ingest_files(bob, pilot, groups=["pilots"])
    kb.index.build_ann_index()
    assert any(i.index_type.upper().startswith("IVF") for i in kb.index.table.list_indices())
    for principal, allowed in ((alice, "mechanics"), (bob, "pilots")):
        for mode in ("vector", "hybrid"):
            hits = kb.search(principal, "oil pump torque pressure", k=10, mode=mode)  # type: ignore[arg-type]
            assert hits and all(allowed in h.groups for h in hits)


def test_index_on_a_fresh_home_has_the_configured_location(kb: KnowledgeBase, flywheel_home: Path) -> None:
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL_V1.encode())], groups=["mechanics"])
    assert (flywheel_home / "lancedb" / "chunks.lance").is_dir()
    assert (flywheel_home / "catalog.db").is_file()
