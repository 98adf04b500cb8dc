from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.programs.rag import (
    NOT_FOUND,
    Passage,
    RAGChatbot,
    RAGConfig,
    cited_passages,
    is_yes_no_question,
    strip_preamble,
)

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
    lm = DummyLM(
        [{"reasoning": "r", "answer": "5 to 30 minutes", "citations": [1, 7, 1], "found": True}],
        adapter=dspy.JSONAdapter(),
    )
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


def test_refuses_without_calling_the_lm_when_no_passage_is_relevant_enough() -> None:
    weak = Passage("d1:1:0", "d1", "oil.md", "Check oil 5 to 30 minutes after shutdown.", relevance=0.2)
    lm = DummyLM([], adapter=dspy.JSONAdapter())
    program = RAGChatbot(lambda q, p, k: [weak], config=RAGConfig(min_relevance=0.35))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = program(question="What is the APU limit?", principal=ALICE)
    assert result.answer == NOT_FOUND and result.citations == [] and not result.found
    assert result.relevance == 0.2 and lm.history == []


def test_the_lm_cannot_hide_its_answer_behind_a_found_flag() -> None:
    # The old design let a `found=false` from a 135M model replace a correct answer with a refusal.
    lm = DummyLM([{"answer": "5 to 30 minutes", "citations": [1], "found": False}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = RAGChatbot(fake_retriever)(question="When do I check oil?", principal=ALICE)
    assert result.answer == "5 to 30 minutes" and result.found


def test_yes_no_questions_get_a_typed_answer() -> None:
    lm = DummyLM([{"answer": "yes", "citations": [1]}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = RAGChatbot(fake_retriever)(question="Do I check oil after shutdown?", principal=ALICE)
    assert result.answer == "Yes"
    schema = str(lm.history[-1]["messages"])
    assert "yes" in schema and "no" in schema
    assert [c["chunk_id"] for c in result.citations] == ["d1:1:0"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is the leopard an Old World mammal?", True),
        ("Can polar bears be seen under infrared photography?", True),
        ("Does the APU need a borescope?", True),
        ("Is it a cat or a dog?", False),
        ("What torque do the bolts need?", False),
        ("Island nations: which is largest?", False),
    ],
)
def test_yes_no_detection(question: str, expected: bool) -> None:
    assert is_yes_no_question(question) is expected


def test_an_uncited_answer_cites_the_passage_that_holds_it() -> None:
    lm = DummyLM([{"answer": "45 minutes", "citations": []}], adapter=dspy.JSONAdapter())
    both = Principal("pat", frozenset({"mechanics", "pilots"}))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = RAGChatbot(fake_retriever)(question="How much reserve fuel?", principal=both)
    assert [c["chunk_id"] for c in result.citations] == ["d2:1:0"]


def test_config_and_demos_round_trip_and_reasoning_is_a_setting(tmp_path) -> None:
    program = RAGChatbot(
        fake_retriever, config=RAGConfig(reasoning=True, min_relevance=0.42, max_demos=3, demo_selection="knn")
    )
    assert isinstance(program.respond, dspy.ChainOfThought)
    program.answer_predictor(yes_no=False).demos = [dspy.Example(question="q", answer="a")]
    path = tmp_path / "rag.json"
    program.save(str(path))
    loaded = RAGChatbot(fake_retriever)  # built with the defaults (no reasoning) ...
    loaded.load(str(path))  # ... takes the saved design with the state
    assert loaded.config == program.config
    assert isinstance(loaded.respond, dspy.ChainOfThought)
    assert loaded.answer_predictor(yes_no=False).demos[0]["answer"] == "a"


def test_lean_program_sends_no_reasoning_field() -> None:
    lm = DummyLM([{"answer": "5 to 30 minutes", "citations": [1]}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        RAGChatbot(fake_retriever)(question="When do I check oil?", principal=ALICE)
    assert "reasoning" not in str(lm.history[-1]["messages"])


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


def test_a_version_saved_before_rag_config_keeps_its_demos() -> None:
    legacy = {
        "condense.predict": {},
        "respond.predict": {
            "demos": [{"question": "q", "answer": "a"}],
            "traces": [],
            "train": [],
            "signature": None,
            "lm": None,
        },
    }
    loaded = RAGChatbot(fake_retriever)
    loaded.load_state(legacy)
    assert loaded.answer_predictor(yes_no=False).demos[0]["answer"] == "a"


def test_short_answers_have_room_and_lose_a_preamble() -> None:
    from flywheel.lm.grammar import grammar_for

    program = RAGChatbot(fake_retriever)
    lm = DummyLM([{"answer": "The answer is: Moldoveanu Peak", "citations": [1]}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = program(question="What is the highest peak?", principal=ALICE)
    assert result.answer == "Moldoveanu Peak"
    assert strip_preamble("The answer to the question is: The answer to the question is: 1833") == "1833"
    assert strip_preamble("The answer to the question is:") == ""
    # The grammar's bound on the answer string must leave room for a phrase, not 14 characters.
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "citations": {"type": "array", "items": {"type": "integer"}}},
    }
    gbnf = grammar_for({"type": "json_schema", "json_schema": {"schema": schema}}, program.respond.config["max_tokens"])
    bound = int(re.search(r"char\{0,(\d+)\}", gbnf).group(1))
    assert bound >= 80
