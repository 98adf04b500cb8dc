"""Store faults: a full disk while ingesting (a real small tmpfs when we may mount one), SQLite under
concurrent writers, a locked or failing database mid-request, and damaged files that `flywheel doctor`
names with a way to repair them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from flywheel.cli.checks import check_databases
from flywheel.config import load_settings
from flywheel.errors import StorageError
from flywheel.knowledge.base import KnowledgeBase
from flywheel.knowledge.snapshot import check_index
from flywheel.stores.feedback import FeedbackStore
from flywheel.stores.keys import ApiKeyStore
from tests.unit.serve_helpers import OIL, HashEmbedder, make_env


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def big_document(sections: int) -> bytes:
    return "".join(
        f"## Section {i}\n\nTorque value {i} for bolt {i * 7} is {i % 50} newton metres. "
        f"Inspect fitting {i} every {i % 9 + 1} cycles.\n\n"
        for i in range(sections)
    ).encode()


def test_disk_full_while_ingesting_keeps_what_was_stored(small_disk: Path) -> None:
    settings = load_settings(home=small_disk / "home")
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    alice = kb.principal("alice")
    assert kb.ingest_files(alice, [("oil.md", OIL)], groups=["mechanics"])[0].status == "added"
    before = kb.index.count()
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 96 * 1024))  # leave ~96 KiB

    result = kb.ingest_files(alice, [("torque.md", big_document(3000))], groups=["mechanics"])[0]
    assert result.status == "failed"
    assert "full" in (result.error or "") and "Free disk space" in (result.error or "")
    assert kb.index.count() == before  # the index is still at its previous version
    hits = kb.search(alice, "When do I check the engine oil?", k=2)
    assert hits and hits[0].source == "oil.md"

    filler.unlink()  # space is back: the same upload now goes through
    again = kb.ingest_files(alice, [("torque.md", big_document(3000))], groups=["mechanics"])[0]
    assert again.status in ("added", "updated"), again
    assert kb.search(alice, "torque value for bolt 70", k=1)[0].source == "torque.md"


def test_concurrent_writers_on_one_sqlite_catalog(flywheel_home: Path) -> None:
    """Uploads, interactions + feedback, key creation and key checks from several threads at once."""
    settings = load_settings()
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    users = [f"user{i}" for i in range(4)]
    for user in users:
        kb.catalog.add_user(user, ["mechanics"])
    keys, feedback = ApiKeyStore(settings.catalog_url), FeedbackStore(settings.catalog_url)
    key = keys.create("user0")[1]
    errors: list[BaseException] = []
    rounds = 8

    def work(user: str) -> None:
        try:
            principal = kb.principal(user)
            for n in range(rounds):
                kb.ingest_files(
                    principal,
                    [(f"{user}-{n}.md", f"# {user} {n}\n\nNote {n} of {user}.\n".encode())],
                    groups=["mechanics"],
                )
                feedback.record_interaction(f"tr-{user}-{n}", user, "rag", "q", "a", [], groups=["mechanics"])
                feedback.add_feedback(f"tr-{user}-{n}", user, rating="up")
                keys.create(user)
                assert keys.authenticate(key) == "user0"
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(kb.catalog.list_documents()) == len(users) * rounds
    assert all(doc.status == "ready" for doc in kb.catalog.list_documents())
    assert len(feedback.list_feedback()) == len(users) * rounds
    assert len(keys.list()) == 1 + len(users) * rounds


def test_a_locked_database_mid_request_is_a_503_with_retry_after(flywheel_home: Path) -> None:
    app, _settings, _kb, keys = make_env()
    service = app.state.flywheel

    def locked(*_args: object, **_kwargs: object) -> int:
        raise OperationalError("INSERT …", {}, Exception("database is locked"))

    service.feedback.add_feedback = locked
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/feedback", json={"trace_id": "tr-x", "rating": "up"}, headers={"Authorization": f"Bearer {keys['alice']}"}
        )
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert "busy" in response.json()["error"]["message"]


def test_doctor_names_a_missing_index_file_and_a_damaged_database(flywheel_home: Path) -> None:
    settings = load_settings()
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    assert "rows at version" in check_index(settings.index_uri)
    assert "catalog: ok" in check_databases(settings)

    data = next((Path(settings.index_uri) / "chunks.lance" / "data").glob("*.lance"))
    data.unlink()
    with pytest.raises(StorageError) as damaged:
        check_index(settings.index_uri)
    assert "is damaged" in damaged.value.message and data.name in damaged.value.message
    assert "flywheel restore" in (damaged.value.hint or "")

    catalog = settings.home / "catalog.db"
    kb.catalog.engine.dispose()
    with sqlite3.connect(catalog) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(catalog.read_bytes())
    raw[100:4096] = b"\xff" * 3996  # the schema page, after the file header
    catalog.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match=r"catalog database .* is damaged"):
        check_databases(settings)


def test_the_same_answer_rated_twice_at_once_is_an_update(flywheel_home: Path) -> None:
    """Found by the soak: two concurrent ratings of one answer raced to insert its feedback row."""
    feedback = FeedbackStore(load_settings().catalog_url)
    errors: list[BaseException] = []

    def rate(barrier: threading.Barrier, trace_id: str, rating: str) -> None:
        try:
            barrier.wait(10)
            feedback.add_feedback(trace_id, "alice", rating=rating)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    for n in range(10):
        feedback.record_interaction(f"tr-{n}", "alice", "rag", "q", "a", [])
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=rate, args=(barrier, f"tr-{n}", r)) for r in ("up", "down", "up", "down")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    assert len(feedback.list_feedback()) == 10
