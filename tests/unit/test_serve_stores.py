"""API keys are hashed at rest and revocable; feedback attaches only to one's own answers."""

from __future__ import annotations

import sqlite3

import pytest

from flywheel.config import load_settings
from flywheel.errors import AccessDeniedError, InvalidInputError, NotFoundError
from flywheel.stores.feedback import FeedbackStore
from flywheel.stores.keys import ApiKeyStore, hash_key


def test_keys_authenticate_are_hashed_at_rest_and_revocable() -> None:
    settings = load_settings()
    settings.ensure_dirs()
    store = ApiKeyStore(settings.catalog_url)
    key_id, plaintext = store.create("alice")
    assert plaintext.startswith("fw_") and len(plaintext) > 40
    assert store.authenticate(plaintext) == "alice"
    assert store.authenticate(plaintext + "x") is None
    assert store.authenticate("") is None and store.authenticate(None) is None

    with sqlite3.connect(settings.home / "catalog.db") as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
    dump = repr(rows)
    assert plaintext not in dump and plaintext[12:] not in dump
    assert hash_key(plaintext) in dump

    listed = store.list()
    assert [(k["id"], k["user"], k["active"]) for k in listed] == [(key_id, "alice", True)]
    assert plaintext.startswith(listed[0]["prefix"]) and len(listed[0]["prefix"]) == 11

    _, other = store.create("alice")
    store.revoke(listed[0]["prefix"])  # by visible prefix
    assert store.authenticate(plaintext) is None
    assert store.authenticate(other) == "alice"
    assert [k["active"] for k in store.list("alice")] == [False, True]


def test_revoking_unknown_or_ambiguous_keys_is_explained() -> None:
    store = ApiKeyStore(load_settings().catalog_url)
    with pytest.raises(NotFoundError, match="No API key"):
        store.revoke("nonexistent")
    with pytest.raises(InvalidInputError):
        store.revoke("fw")
    with pytest.raises(InvalidInputError):
        store.create("Not A Valid Name")


def test_feedback_attaches_to_own_interactions_and_exports_rows() -> None:
    store = FeedbackStore(load_settings().catalog_url)
    citations = [{"chunk_id": "d1:1:0", "doc_id": "d1", "citation": "oil.md", "text": "Check oil."}]
    store.record_interaction("tr-1", "alice", "rag", "When?", "Soon.", citations, groups=["mechanics"])
    store.record_interaction("tr-2", "bob", "agent", "Fuel?", "45 min.", [])

    feedback_id = store.add_feedback("tr-1", "alice", rating="up")
    assert store.add_feedback("tr-1", "alice", correction="5 to 30 minutes") == feedback_id  # updates
    with pytest.raises(AccessDeniedError):
        store.add_feedback("tr-2", "alice", rating="down")
    with pytest.raises(NotFoundError):
        store.add_feedback("tr-404", "alice", rating="down")
    with pytest.raises(InvalidInputError, match="empty"):
        store.add_feedback("tr-1", "alice")
    with pytest.raises(InvalidInputError, match="rating"):
        store.add_feedback("tr-1", "alice", rating="sideways")  # type: ignore[arg-type]

    rows = store.list_feedback()
    assert len(rows) == 1
    row = rows[0]
    assert {
        k: row[k] for k in ("trace_id", "user", "program", "question", "answer", "rating", "correction", "comment")
    } == {
        "trace_id": "tr-1",
        "user": "alice",
        "program": "rag",
        "question": "When?",
        "answer": "Soon.",
        "rating": "up",
        "correction": "5 to 30 minutes",
        "comment": None,
    }
    assert row["citations"] == citations and row["created_at"]
    assert store.list_feedback("agent") == []
    store.add_feedback("tr-2", "bob", comment="fine")
    assert [r["trace_id"] for r in store.list_feedback("agent")] == ["tr-2"]
