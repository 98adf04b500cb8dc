"""A search's LanceDB queries run together: one trip to LanceDB's event loop, the ACL inside each
query, and a keyword query the full-text parser refuses leaves the vector results standing."""

from __future__ import annotations

from pathlib import Path

import pytest
from lancedb import background_loop

from flywheel.knowledge.base import KnowledgeBase
from flywheel.knowledge.queries import TextQuery, VectorQuery, run_queries
from tests.unit.serve_helpers import OIL, alice_and_frank


@pytest.fixture()
def kb(tmp_path: Path) -> KnowledgeBase:
    baggage = b"# Baggage\n\nOne bag of 23 kg is free on every flight."
    return alice_and_frank(tmp_path / "home", {"mechanics": [("oil.md", OIL)], "everyone": [("public.md", baggage)]})


def test_a_hybrid_search_is_one_trip_to_lancedbs_event_loop(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    """The synchronous query builder made 12 trips per hybrid search (schema lookups, plan, batches),
    each a wake-up of LanceDB's loop thread: most of a small index's search CPU."""
    kb.search(kb.principal("alice"), "engine oil", k=3)  # open the index and its tables first
    trips: list[object] = []
    run = background_loop.LOOP.run

    def counting(future: object) -> object:
        trips.append(future)
        return run(future)

    monkeypatch.setattr(background_loop.LOOP, "run", counting)
    hits = kb.search(kb.principal("alice"), "engine oil", k=3)
    assert len(trips) == 1
    assert hits and {"vector", "text"} <= {name for hit in hits for name in hit.ranks}


def test_each_query_keeps_the_acl(kb: KnowledgeBase) -> None:
    frank = kb.principal("frank")
    for mode in ("hybrid", "vector", "text"):
        hits = kb.search(frank, "engine oil baggage", k=10, mode=mode)
        assert hits and all("everyone" in hit.groups for hit in hits), mode


def test_a_keyword_query_lancedb_refuses_leaves_the_vector_results(kb: KnowledgeBase) -> None:
    """Full-text search on a column without an inverted index fails inside LanceDB: no keyword
    matches, as for a query the parser refuses; a failing vector query is an error."""
    index, vector = kb.index, kb.embedder.embed(["engine oil"])[0]
    rows = run_queries(
        index.table,
        "true",
        index.result_columns,
        {"vector": [VectorQuery(vector, 5)], "text": [TextQuery("oil", "title", 5)]},
    )
    assert rows["text"] == [] and rows["vector"] and "vector" not in rows["vector"][0]
    with pytest.raises(Exception, match=r"(?i)dim|size|length"):
        run_queries(index.table, "true", index.result_columns, {"vector": [VectorQuery(vector[:7], 5)]})
