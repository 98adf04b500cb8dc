"""Every store on one metadata and one engine per URL, its schema made by the migrations, on SQLite and
on PostgreSQL (a throwaway server; skipped with the reason when PostgreSQL is not installed)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from flywheel.access import Principal
from flywheel.errors import AccessDeniedError, NotFoundError, StorageError
from flywheel.knowledge.catalog import Catalog
from flywheel.stores.conversations import ConversationStore
from flywheel.stores.database import Base, open_database, upgrade
from flywheel.stores.feedback import FeedbackStore
from flywheel.stores.keys import ApiKeyStore
from flywheel.stores.responses import ResponseStore

TABLES = {
    "users",
    "groups",
    "memberships",
    "documents",
    "document_versions",
    "conversations",
    "conversation_turns",
    "interactions",
    "feedback",
    "api_keys",
    "responses",
}


def test_every_store_works_on_the_database(store_url: str) -> None:
    catalog = Catalog(store_url)
    catalog.add_group("mechanics")
    catalog.add_user("alice", ["mechanics"])
    assert catalog.principal("alice").groups >= {"mechanics"}

    keys = ApiKeyStore(store_url)
    _, plaintext = keys.create("alice")
    assert keys.authenticate(plaintext) == "alice"

    feedback = FeedbackStore(store_url)
    feedback.record_interaction("tr-1", "alice", "rag", "When?", "Soon.", [{"chunk_id": "d:1:0"}], groups=["a"])
    feedback.add_feedback("tr-1", "alice", rating="up")
    with pytest.raises(AccessDeniedError):
        feedback.add_feedback("tr-1", "bob", rating="down")
    assert [row["rating"] for row in feedback.list_feedback()] == ["up"]

    conversations = ConversationStore(store_url)
    alice = Principal("alice", frozenset({"mechanics"}))
    conversation = conversations.start(alice)
    conversations.append(alice, conversation, "Q1", "A1", [])
    conversations.append(alice, conversation, "Q2", "A2", [])
    assert conversations.history(alice, conversation) == [
        {"question": "Q1", "answer": "A1"},
        {"question": "Q2", "answer": "A2"},
    ]
    with pytest.raises(NotFoundError):
        conversations.history(Principal("bob"), conversation)

    responses = ResponseStore(store_url)
    responses.save("alice", {"id": "resp_1", "output": []}, [{"question": "Q", "answer": "A"}])
    assert responses.history("alice", "resp_1") == [{"question": "Q", "answer": "A"}]
    with pytest.raises(NotFoundError):
        responses.get("bob", "resp_1")


def test_the_stores_share_one_engine_per_url(store_url: str) -> None:
    engines = {
        id(store.engine)
        for store in (
            Catalog(store_url),
            ApiKeyStore(store_url),
            FeedbackStore(store_url),
            ConversationStore(store_url),
            ResponseStore(store_url),
        )
    }
    assert len(engines) == 1


def test_the_migrations_make_exactly_the_tables_the_models_declare(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    database = open_database(store_url)
    assert set(inspect(database.engine).get_table_names()) == TABLES | {"alembic_version"}
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"


def test_a_database_made_by_create_all_before_migrations_opens_with_its_rows(store_url: str) -> None:
    legacy = create_engine(store_url)
    Base.metadata.tables["users"].create(legacy)  # an older catalog: only some of today's tables
    Base.metadata.tables["api_keys"].create(legacy)
    with legacy.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (name, display_name, is_admin, created_at) "
                "VALUES ('carol', '', false, CURRENT_TIMESTAMP)"
            )
        )
    legacy.dispose()

    catalog = Catalog(store_url)
    assert catalog.principal("carol").user == "carol"
    assert set(inspect(catalog.engine).get_table_names()) == TABLES | {"alembic_version"}
    FeedbackStore(store_url).record_interaction("tr-9", "carol", "rag", "Q", "A", [])  # a table it lacked


def test_upgrading_twice_changes_nothing(store_url: str) -> None:
    database = open_database(store_url)
    upgrade(database.engine)
    assert set(inspect(database.engine).get_table_names()) == TABLES | {"alembic_version"}


def _open_and_write(url: str, user: str) -> None:
    ApiKeyStore(url).create(user)


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_and_write, args=(url, f"user{i}")) for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert len(ApiKeyStore(url).list()) == 3


def test_an_unreachable_database_is_a_storage_error_that_says_what_to_check(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://nobody:secret@/flywheel?host={tmp_path}&port=1"
    with pytest.raises(StorageError, match="CATALOG_URL") as raised:
        ApiKeyStore(url)
    assert "secret" not in str(raised.value)


def test_a_database_at_the_first_revision_upgrades_and_keeps_its_interactions(store_url: str) -> None:
    older = create_engine(store_url)
    upgrade(older, "0001")  # interactions without program_version
    with older.begin() as connection:
        connection.execute(
            text(
                'INSERT INTO interactions (trace_id, "user", program, question, answer, citations, groups, created_at) '
                "VALUES ('tr-old', 'alice', 'rag', 'Q', 'A', '[]', '[]', CURRENT_TIMESTAMP)"
            )
        )
    older.dispose()

    store = FeedbackStore(store_url)  # opening upgrades to the latest revision
    assert store.interaction("tr-old")["program_version"] is None
    store.record_interaction("tr-new", "alice", "rag", "Q", "A", [], program_version="3")
    assert store.interaction("tr-new")["program_version"] == "3"
