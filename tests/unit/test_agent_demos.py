"""Optimizing the agent is ACL-safe: demos that show tool outputs carry their documents and tools."""

from __future__ import annotations

import dspy
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.evaluate.catalog import optimizer_metric
from flywheel.evaluate.metrics import answer_contains, tool_choice
from flywheel.optimize.compile import compile_program
from flywheel.programs.agent import ToolAgent
from flywheel.programs.demos import SOURCE_FIELD, TOOLS_FIELD
from flywheel.tools.registry import Tool, ToolContext, ToolRegistry, ToolResult

CANARY = "CANARY-AG7 merger talks with Juniper Air"
DOC_GROUPS = {"board": {"management"}}
GRACE = Principal("grace", frozenset({"management"}))
HANK = Principal("hank", frozenset({"mechanics"}))  # may use the records tool, cannot read board minutes
FRANK = Principal("frank")


def board_minutes(tool_input: str, context: ToolContext) -> ToolResult:
    if not context.principal.can_read(DOC_GROUPS["board"]):
        return ToolResult("No passages found in the documents you may read.")
    return ToolResult(f"(board.md) {CANARY}", ({"doc_id": "board", "chunk_id": "board:1:0"},))


def records(tool_input: str, context: ToolContext) -> ToolResult:
    return ToolResult("N401SK: borescope overdue since 2026-09-26", ({"record": "INSP-0001"},))


REGISTRY = ToolRegistry(
    [
        Tool("search_documents", "Search documents.", board_minutes),
        Tool("maintenance_records", "Maintenance records.", records, frozenset({"mechanics", "management"})),
    ]
)


def readable(principal: Principal, doc_ids) -> set[str]:
    return {d for d in doc_ids if principal.can_read(DOC_GROUPS.get(d, set()))}


def agent() -> ToolAgent:
    return ToolAgent(REGISTRY, {}, max_steps=1, readable=readable, ranker=lambda q, tools: list(tools))


def test_bootstrapped_agent_demos_carry_documents_and_tools_and_stay_with_their_readers() -> None:
    trainset = [
        dspy.Example(question="What did the board discuss?", principal=GRACE, answer=CANARY).with_inputs(
            "question", "principal"
        )
    ]
    lm = DummyLM(
        [{"tool": "search_documents", "tool_input": "board"}, {"answer": CANARY, "citations": [1]}],
        adapter=dspy.JSONAdapter(),
    )
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = compile_program(
            agent(), trainset, optimizer="bootstrap", metric=optimizer_metric(answer_contains, threshold=1.0), threads=1
        )
    assert result.params["max_labeled_demos"] == 0
    answer_demo = result.program.respond.demos[0]
    assert answer_demo[SOURCE_FIELD] == ["board"] and answer_demo[TOOLS_FIELD] == ["search_documents"]

    def prompts(principal: Principal) -> str:
        replies = [{"tool": "maintenance_records", "tool_input": "N401SK"}, {"answer": "ok", "citations": [1]}]
        lm = DummyLM(replies, adapter=dspy.JSONAdapter())
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            result.program(question="Anything new?", principal=principal)
        return str([entry["messages"] for entry in lm.history])

    assert CANARY in prompts(GRACE)
    assert CANARY not in prompts(HANK)  # uses the same tools, cannot read the document
    assert CANARY not in prompts(FRANK)


def test_demo_with_observations_but_no_provenance_is_never_shown() -> None:
    program = agent()
    program.respond.demos = [dspy.Example(question="q", observations="[1] secret text", answer="a")]
    lm = DummyLM(
        [{"tool": "maintenance_records", "tool_input": "x"}, {"answer": "ok", "citations": [1]}],
        adapter=dspy.JSONAdapter(),
    )
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        program(question="Anything?", principal=GRACE)
    assert "secret text" not in str([entry["messages"] for entry in lm.history])


def test_tool_choice_scores_the_first_tool_called() -> None:
    row = {"tool": "maintenance_records"}
    assert tool_choice(row, {"steps": [{"tool": "maintenance_records"}, {"tool": "search_documents"}]}) == 1.0
    assert tool_choice(row, {"steps": [{"tool": "search_documents"}]}) == 0.0
    assert tool_choice(row, {"steps": []}) == 0.0
    assert tool_choice({"answer": "x"}, {"steps": []}) is None
