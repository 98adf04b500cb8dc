"""The benchmarks' store plumbing: bench.workers copies the sample catalog into a throwaway PostgreSQL
server (real server, skipped with the reason when PostgreSQL is not installed) and counts traces in
either tracking store; ``python -m bench`` runs bench.deploy and bench.workers by default and quotes
their saved summaries in the closing note. No servers of Flywheel's own, no timing asserts."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import __main__ as suite
from bench import services
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


def test_the_default_run_includes_deploy_and_workers() -> None:
    for name in ("deploy", "workers"):
        quick, default, _full, limit = suite.PLAN[name]
        assert quick is not None and default is not None and limit > 0


def test_the_closing_note_quotes_deploy_and_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(services, "SUMMARIES", tmp_path)
    services.save_summary(
        "deploy",
        {
            "flywheel": {"swap_s": 3.2, "failed": 0, "requests": 480, "traces": 481, "answered": 481},
            "langchain": {"swap_s": 6.5, "failed": 37, "requests": 300},
            "reload_s": 5.0,
        },
    )
    figures = {"throughput": 52.24, "p50_ms": 40.0, "p95_ms": 90.0, "failed": 0.0, "traces": 204.0}
    services.save_summary(
        "workers",
        {
            "concurrency": 32,
            "stores": {
                "sqlite": {"1": {**figures, "answers": 204.0}, "2": {**figures, "throughput": 80.0, "answers": 208.0}},
                "postgres": {"1": {**figures, "throughput": 61.0, "answers": 204.0}},
            },
        },
    )
    note = suite.closing_note([["whole suite", "", "1.0"]])

    assert "first answer from it 3.2 s" in note and "failed requests during the swap 0 of 480" in note
    assert "traces stored / answers 481 / 481" in note and "6.5 s to its first answer, 37 failed" in note
    assert "| stores | 1 process | 2 processes |" in note
    assert "| sqlite | 52.2 (0 failed, 204 / 204) | 80.0 (0 failed, 204 / 208) |" in note
    assert "| postgres | 61.0 (0 failed, 204 / 204) | – |" in note
