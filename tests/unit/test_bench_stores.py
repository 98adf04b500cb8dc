"""The benchmarks' store plumbing: bench.workers copies the sample catalog into a throwaway PostgreSQL
server (real server, skipped with the reason when PostgreSQL is not installed) and counts traces in
either tracking store. No servers of Flywheel's own, no timing asserts."""

from __future__ import annotations

from pathlib import Path

from bench.deploy import count_traces
from bench.postgres import PostgresServer
from bench.workers import copy_database

from flywheel.access import Principal
from flywheel.knowledge.catalog import Catalog
from flywheel.stores.conversations import ConversationStore
from flywheel.stores.feedback import FeedbackStore


def test_the_catalog_copies_into_postgresql_with_its_sequences_moved_on(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(source)
    catalog.add_group("mechanics")
    catalog.add_user("alice", ["mechanics"])
    feedback = FeedbackStore(source)
    feedback.record_interaction("tr-1", "alice", "rag", "When?", "Soon.", [], groups=["mechanics"])
    feedback.add_feedback("tr-1", "alice", rating="up")
    alice = Principal("alice", frozenset({"mechanics"}))
    conversations = ConversationStore(source)
    conversations.append(alice, conversations.start(alice), "Q1", "A1", [])

    target = postgres.new_database()
    copied = copy_database(source, target)

    assert copied["users"] == copied["feedback"] == copied["conversation_turns"] == 1
    assert Catalog(target).principal("alice").groups >= {"mechanics"}
    copy = FeedbackStore(target)
    copy.record_interaction("tr-2", "alice", "rag", "Where?", "Here.", [], groups=["mechanics"])
    copy.add_feedback("tr-2", "alice", rating="down")  # a new serial id after the copied one
    assert sorted(row["rating"] for row in copy.list_feedback()) == ["down", "up"]


def test_traces_are_counted_in_either_tracking_store(postgres: PostgresServer, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    for url in (f"sqlite:///{tmp_path / 'mlflow.db'}", postgres.new_database("mlflow")):
        assert count_traces(url) == -1  # no MLflow schema yet
        engine = create_engine(url)
        with engine.begin() as db:
            db.execute(text("CREATE TABLE trace_info (request_id VARCHAR(50) PRIMARY KEY)"))
            db.execute(text("INSERT INTO trace_info VALUES ('tr-1'), ('tr-2')"))
        engine.dispose()
        assert count_traces(url) == 2
