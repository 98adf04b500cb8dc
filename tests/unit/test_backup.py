"""flywheel backup / restore: a consistent copy of a home that keeps being written to, restored into a
fresh home with the same search results, keys, feedback and champion (its artifacts from the new home)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from flywheel.backup import backup_home, restore_home, verify_backup
from flywheel.config import Settings, load_settings
from flywheel.errors import InvalidInputError, StorageError
from flywheel.knowledge.base import KnowledgeBase
from flywheel.registry.programs import ProgramRegistry
from flywheel.stores.feedback import FeedbackStore
from flywheel.stores.keys import ApiKeyStore
from tests.unit.serve_helpers import FUEL, OIL, HashEmbedder
from tests.unit.test_registry import classifier_with_demo

QUERIES = [("alice", "When do I check the engine oil level?"), ("bob", "How much final reserve fuel?")]


def searches(kb: KnowledgeBase) -> list[list[tuple[str, str, float]]]:
    return [
        [(h.chunk_id, h.doc_id, round(h.score, 6)) for h in kb.search(kb.principal(user), query, k=5)]
        for user, query in QUERIES
    ]


def consistent(kb: KnowledgeBase) -> None:
    """Every ready document has exactly its live version's chunks in the index; no chunks without a document."""
    rows = kb.index.table.search().select(["doc_id", "version"]).limit(100_000).to_list()
    docs = {d.id: d for d in kb.catalog.list_documents()}
    assert {r["doc_id"] for r in rows} <= set(docs)
    for doc in docs.values():
        live = next((v for v in doc.versions if v.version == doc.live_version), None)
        if live is not None and live.status == "ready":
            assert (
                sum(1 for r in rows if r["doc_id"] == doc.id and r["version"] == doc.live_version) == live.chunk_count
            ), doc.source


def populate(settings: Settings) -> tuple[KnowledgeBase, str, int]:
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.catalog.add_user("bob", ["pilots"])
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    kb.ingest_files(kb.principal("bob"), [("fuel.md", FUEL)], groups=["pilots"])
    key = ApiKeyStore(settings.catalog_url).create("alice")[1]
    feedback = FeedbackStore(settings.catalog_url)
    feedback.record_interaction("tr-1", "alice", "rag", "oil?", "after shutdown", [], groups=["mechanics"])
    feedback.add_feedback("tr-1", "alice", rating="up", correction="5 to 30 minutes after shutdown")
    registry = ProgramRegistry(settings)
    version = registry.register("classifier", classifier_with_demo("first")).version
    registry.promote("classifier", version)
    return kb, key, version


def test_backup_under_writes_and_restore_into_a_fresh_home(flywheel_home: Path, tmp_path: Path) -> None:
    settings = load_settings()
    kb, key, champion = populate(settings)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:  # uploads and feedback keep arriving while the backup runs
        alice, feedback = kb.principal("alice"), FeedbackStore(settings.catalog_url)
        while not stop.is_set() and len(written) < 40:
            n = len(written)
            kb.ingest_files(
                alice, [(f"extra-{n}.md", f"# Zebra {n}\n\nQuokka note {n}.\n".encode())], groups=["mechanics"]
            )
            feedback.record_interaction(f"tr-w{n}", "alice", "rag", "q", "a", [], groups=["mechanics"])
            written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = backup_home(settings, tmp_path / "live-backup")
    finally:
        stop.set()
        thread.join(60)
    assert {"catalog.db", "mlflow.db"} <= set(report.databases) and report.tables
    assert written, "the writer should have run during the backup"

    restored = load_settings(home=tmp_path / "restored")
    restore_home(restored, tmp_path / "live-backup")
    kb2 = KnowledgeBase(restored, embedder=HashEmbedder())
    consistent(kb2)  # a consistent moment, although uploads were committing meanwhile
    assert searches(kb2)[0][0][1] == searches(kb)[0][0][1]

    # A backup of a quiet home restores to exactly the same search results, keys, feedback and champion.
    backup_home(settings, tmp_path / "quiet-backup")
    fresh = load_settings(home=tmp_path / "fresh")
    summary = restore_home(fresh, tmp_path / "quiet-backup")
    assert summary["previous_home"] is None
    shutil.rmtree(settings.home / "mlartifacts")  # the restored registry must read its own artifacts
    kb3 = KnowledgeBase(fresh, embedder=HashEmbedder())
    assert searches(kb3) == searches(kb)
    assert ApiKeyStore(fresh.catalog_url).authenticate(key) == "alice"
    rows = FeedbackStore(fresh.catalog_url).list_feedback()
    assert [(r["trace_id"], r["rating"]) for r in rows] == [("tr-1", "up")]
    registry = ProgramRegistry(fresh)
    assert registry.get("classifier").version == champion
    version, state = registry.load_state("classifier")
    assert version.version == champion and "first" in str(state)


def test_restore_refuses_damaged_backups_and_non_empty_homes(flywheel_home: Path, tmp_path: Path) -> None:
    settings = load_settings()
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    backup_home(settings, tmp_path / "b")
    with pytest.raises(InvalidInputError, match="not empty"):
        backup_home(settings, tmp_path / "b")
    with pytest.raises(InvalidInputError, match="not empty"):
        restore_home(settings, tmp_path / "b")  # the live home
    summary = restore_home(settings, tmp_path / "b", force=True)
    assert Path(summary["previous_home"]).is_dir()  # moved aside, never deleted
    catalog = tmp_path / "b" / "catalog.db"
    data = catalog.read_bytes()  # flip the last 100 bytes (they may already be zeros: free space of a page)
    catalog.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:]))
    with pytest.raises(StorageError, match=r"damaged.*catalog\.db"):
        verify_backup(tmp_path / "b")
    with pytest.raises(InvalidInputError, match="not a Flywheel backup"):
        restore_home(load_settings(home=tmp_path / "x"), tmp_path)


def test_cli_backup_and_restore(flywheel_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from flywheel.cli import common
    from flywheel.cli.app import app

    settings = load_settings()
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    common.settings.cache_clear()
    done = CliRunner().invoke(app, ["backup", str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    assert "Restore with: flywheel restore" in done.output
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "new-home"))
    common.settings.cache_clear()
    done = CliRunner().invoke(app, ["restore", str(tmp_path / "b")])
    common.settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert KnowledgeBase(load_settings(), embedder=HashEmbedder()).principal("alice").groups >= {"mechanics"}


def test_databases_are_copied_again_when_the_index_moves(
    flywheel_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload committing between the catalog copy and the index copy must not split the backup."""
    import flywheel.backup as backup

    settings = load_settings()
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    real, copies = backup.copy_sqlite, []

    def copy_then_upload(source: Path, target: Path) -> None:
        real(source, target)
        copies.append(source.name)
        if len(copies) == 1:  # right after the first database copy, an upload lands
            kb.ingest_files(kb.principal("alice"), [("late.md", b"# Late\n\nA late note.\n")], groups=["mechanics"])

    monkeypatch.setattr(backup, "copy_sqlite", copy_then_upload)
    backup.backup_home(settings, tmp_path / "b")
    assert copies.count("catalog.db") == 2  # copied again, with the index version that matches
    restored = load_settings(home=tmp_path / "r")
    restore_home(restored, tmp_path / "b")
    kb2 = KnowledgeBase(restored, embedder=HashEmbedder())
    consistent(kb2)
    assert {d.source for d in kb2.catalog.list_documents()} == {"oil.md", "late.md"}
