"""ACL-safe optimization: bootstrapped demos never reach a prompt for someone who cannot read their sources."""

from __future__ import annotations

import dspy
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.evaluate.catalog import optimizer_metric
from flywheel.evaluate.metrics import exact_match
from flywheel.optimize.compile import compile_program
from flywheel.programs.rag import SOURCE_FIELD, Passage, RAGChatbot, visible_demos

CANARY = "CANARY-7Q2 budget cut of 12 percent"
DOC_GROUPS = {"secret": {"management"}, "public": {"everyone"}}
SECRET = Passage("secret:1:0", "secret", "budget.md", f"The 2027 plan: {CANARY}.")
PUBLIC = Passage("public:1:0", "public", "bags.md", "Each passenger may check one bag of 23 kg.")

GRACE = Principal("grace", frozenset({"management"}))
FRANK = Principal("frank")


def retriever(query: str, principal: Principal, k: int) -> list[Passage]:
    return [p for p in (SECRET, PUBLIC) if principal.can_read(DOC_GROUPS[p.doc_id])][:k]


def readable(principal: Principal, doc_ids) -> set[str]:
    return {d for d in doc_ids if principal.can_read(DOC_GROUPS.get(d, set()))}


def answer(text: str) -> dict:
    return {"reasoning": "from the passages", "answer": text, "citations": [1], "found": True}


def compiled_program() -> RAGChatbot:
    trainset = [
        dspy.Example(question="What is the budget cut?", principal=GRACE, answer=CANARY).with_inputs(
            "question", "principal"
        ),
        dspy.Example(question="How heavy may a bag be?", principal=FRANK, answer="23 kg").with_inputs(
            "question", "principal"
        ),
    ]
    lm = DummyLM([answer(CANARY), answer("23 kg")], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = compile_program(
            RAGChatbot(retriever, readable=readable),
            trainset,
            optimizer="bootstrap",
            metric=optimizer_metric(exact_match, threshold=1.0),
            threads=1,
        )
    assert result.params["max_labeled_demos"] == 0  # gold answers of other users never become demos
    return result.program


def prompts_for(program: RAGChatbot, principal: Principal) -> str:
    lm = DummyLM([answer("ok")], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        program(question="Anything new?", principal=principal)
    return str([entry["messages"] for entry in lm.history])


def test_bootstrapped_demos_carry_their_source_documents() -> None:
    program = compiled_program()
    demos = program.answer_predictor(yes_no=False).demos
    assert len(demos) == 2
    sources = sorted(tuple(d[SOURCE_FIELD]) for d in demos)
    assert sources == [("public",), ("secret", "public")]


def test_outsider_prompts_contain_no_canary_text_but_insiders_get_the_demo() -> None:
    program = compiled_program()
    outsider = prompts_for(program, FRANK)
    assert "CANARY-7Q2" not in outsider
    assert "23 kg" in outsider  # the public demo is still shown
    insider = prompts_for(program, GRACE)
    assert "CANARY-7Q2" in insider


def test_demos_follow_current_groups_and_fail_closed() -> None:
    program = compiled_program()
    demos = program.answer_predictor(yes_no=False).demos
    assert len(visible_demos(demos, GRACE, readable)) == 2
    # the secret document is revoked from management after compiling: the demo disappears
    DOC_GROUPS["secret"] = {"auditors"}
    try:
        assert len(visible_demos(demos, GRACE, readable)) == 1
    finally:
        DOC_GROUPS["secret"] = {"management"}
    # without a readable check, or without provenance, passage demos are never shown
    assert visible_demos(demos, GRACE, None) == []
    unattributed = [dspy.Example(passages="[1] text", question="q", answer="a")]
    assert visible_demos(unattributed, GRACE, readable) == []


def test_saved_and_reloaded_program_keeps_provenance(tmp_path) -> None:
    program = compiled_program()
    path = tmp_path / "state.json"
    program.save(str(path))
    fresh = RAGChatbot(retriever, readable=readable)
    fresh.load(str(path))
    assert "CANARY-7Q2" not in prompts_for(fresh, FRANK)
    assert "CANARY-7Q2" in prompts_for(fresh, GRACE)
