from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.programs.rag import NOT_FOUND, Passage, RAGChatbot, cited_passages

MECH = Passage("d1:1:0", "d1", "oil.md §2 Procedure", "Check oil 5 to 30 minutes after shutdown.")
PILOT = Passage("d2:1:0", "d2", "fuel.md", "Carry 45 minutes of final reserve fuel.")


def fake_retriever(query: str, principal: Principal, k: int) -> list[Passage]:
    passages = [MECH] if "mechanics" in principal.groups else []
    passages += [PILOT] if "pilots" in principal.groups else []
    return passages[:k]


ALICE = Principal("alice", frozenset({"mechanics"}))
BOB = Principal("bob", frozenset({"pilots"}))
FRANK = Principal("frank")


def test_answers_with_citations_mapped_to_real_chunks() -> None:
    lm = DummyLM([{"reasoning": "r", "answer": "5 to 30 minutes", "citations": [1, 7, 1], "found": True}],
                 adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = RAGChatbot(fake_retriever)(question="When do I check oil?", principal=ALICE)
    assert result.answer == "5 to 30 minutes"
    assert [c["chunk_id"] for c in result.citations] == ["d1:1:0"]  # 7 is out of range, the repeat dropped
    assert result.found


def test_empty_retrieval_says_not_in_documents_without_calling_the_lm() -> None:
    lm = DummyLM([], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = RAGChatbot(fake_retriever)(question="When do I check oil?", principal=FRANK)
    assert result.answer == NOT_FOUND
    assert result.citations == [] and not result.found
    assert lm.history == []


def test_not_found_from_the_lm_drops_invented_citations() -> None:
    lm = DummyLM([{"reasoning": "r", "answer": "Probably 10", "citations": [1], "found": False}],
                 adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = RAGChatbot(fake_retriever)(question="What is the APU limit?", principal=ALICE)
    assert result.answer == NOT_FOUND and result.citations == []


def test_follow_up_questions_are_condensed_with_history() -> None:
    lm = DummyLM(
        [
            {"reasoning": "r", "query": "oil check timing PW127M"},
            {"reasoning": "r", "answer": "Within 30 minutes", "citations": [1], "found": True},
        ],
        adapter=dspy.JSONAdapter(),
    )
    seen: list[str] = []

    def retriever(query: str, principal: Principal, k: int) -> list[Passage]:
        seen.append(query)
        return fake_retriever(query, principal, k)

    history = [{"question": "Tell me about the PW127M", "answer": "It is the ATR engine."}]
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = RAGChatbot(retriever)(question="and its oil check?", principal=ALICE, history=history)
    assert seen == ["oil check timing PW127M"]
    assert result.query == "oil check timing PW127M"


def test_requires_a_principal() -> None:
    with pytest.raises(TypeError, match="Principal"):
        RAGChatbot(fake_retriever)(question="q", principal="alice")


def test_two_principals_interleaved_across_threads_never_mix() -> None:
    program = RAGChatbot(fake_retriever)
    answers = {"alice": {"reasoning": "r", "answer": "a", "citations": [1], "found": True}}
    barrier = threading.Barrier(8)

    def ask(principal: Principal) -> tuple[str, set[str]]:
        lm = DummyLM([answers["alice"]] * 5, adapter=dspy.JSONAdapter())
        barrier.wait()
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            result = program(question="oil or fuel?", principal=principal)
        return principal.user, {p["doc_id"] for p in result.passages}

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, [ALICE, BOB] * 4))
    for user, docs in results:
        assert docs == ({"d1"} if user == "alice" else {"d2"})


def test_cited_passages_ignores_garbage() -> None:
    assert cited_passages(["2", "x", None, 0, -1, 2], [MECH, PILOT]) == [PILOT]


def test_program_state_round_trips_through_a_json_file(tmp_path) -> None:
    program = RAGChatbot(fake_retriever)
    program.respond.predict.demos = [dspy.Example(question="q", answer="a")]
    path = tmp_path / "rag.json"
    program.save(str(path))
    loaded = RAGChatbot(fake_retriever)
    loaded.load(str(path))
    assert loaded.respond.predict.demos[0]["answer"] == "a"
