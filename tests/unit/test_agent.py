from __future__ import annotations

from pathlib import Path

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.assistant.builtin_tools import default_tools
from flywheel.programs.agent import NO_ANSWER, ToolAgent
from flywheel.tools.maintenance import MaintenanceRecords, build_database
from flywheel.tools.registry import Tool, ToolContext, ToolRegistry, ToolResult

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ALICE = Principal("alice", frozenset({"mechanics"}))
CAROL = Principal("carol", frozenset({"customer-support"}))


class FakeHit:
    def __init__(self, doc: str) -> None:
        self.chunk_id, self.doc_id, self.text = f"{doc}:1:0", doc, f"text of {doc}"

    def citation(self) -> str:
        return f"{self.doc_id}.md"


class FakeKnowledge:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def search(self, principal: Principal, query: str, k: int = 4) -> list[FakeHit]:
        self.calls.append((principal.user, query))
        return [FakeHit(f"doc-for-{principal.user}")]


@pytest.fixture(scope="module")
def maintenance(tmp_path_factory: pytest.TempPathFactory) -> MaintenanceRecords:
    db = build_database(SAMPLES / "maintenance", tmp_path_factory.mktemp("mx") / "maintenance.db")
    return MaintenanceRecords(db)


def agent(maintenance: MaintenanceRecords, max_steps: int = 3) -> tuple[ToolAgent, FakeKnowledge]:
    kb = FakeKnowledge()
    return ToolAgent(default_tools(), {"knowledge": kb, "maintenance": maintenance}, max_steps=max_steps), kb


def run(program: ToolAgent, answers: list[dict], principal: Principal, question: str = "q") -> dspy.Prediction:
    lm = DummyLM(answers, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return program(question=question, principal=principal)


FINAL = {"reasoning": "r", "answer": "the answer", "citations": [1]}


def test_search_tool_is_selected_and_cited(maintenance: MaintenanceRecords) -> None:
    program, kb = agent(maintenance)
    result = run(
        program,
        [{"tool": "search_documents", "tool_input": "oil servicing"}, {"tool": "finish", "tool_input": ""}, FINAL],
        ALICE,
    )
    assert kb.calls == [("alice", "oil servicing")]
    assert result.answer == "the answer"
    assert result.citations == [
        {
            "tool": "search_documents",
            "chunk_id": "doc-for-alice:1:0",
            "doc_id": "doc-for-alice",
            "citation": "doc-for-alice.md",
        }
    ]


def test_maintenance_tool_runs_parameterized_queries(maintenance: MaintenanceRecords) -> None:
    program, _ = agent(maintenance)
    result = run(
        program,
        [
            {"tool": "maintenance_records", "tool_input": "open deferred defects on N401SK"},
            {"tool": "finish", "tool_input": ""},
            FINAL,
        ],
        ALICE,
    )
    assert result.steps[0]["tool"] == "maintenance_records"
    assert "N401SK" in result.steps[0]["output"]
    assert result.citations  # the records are cited (an empty list would pass the check below vacuously)
    assert all(c["table"] in ("deferred_defects", "inspections") for c in result.citations)


def test_maintenance_input_is_never_sql(maintenance: MaintenanceRecords) -> None:
    hostile = "N401SK'; DROP TABLE aircraft; -- deferred"
    text = maintenance.answer(hostile).text
    assert "N401SK" in text
    assert maintenance.aircraft("N401SK")  # the table is intact


def test_classifier_tool_only_for_groups_that_may_use_it(maintenance: MaintenanceRecords) -> None:
    program, _ = agent(maintenance)
    result = run(
        program,
        [
            {"tool": "classify_feedback", "tool_input": "lost my bag"},
            {"sentiment": "negative"},
            {"tool": "finish", "tool_input": ""},
            FINAL,
        ],
        CAROL,
    )
    assert result.steps[0]["output"] == "sentiment: negative"
    # For alice the tool is not on the menu: the Literal excludes it, so the choice is unusable.
    refused = run(program, [{"tool": "classify_feedback", "tool_input": "x"}] * 3, ALICE)
    assert refused.answer == NO_ANSWER
    assert {s["tool"] for s in refused.steps} == {"invalid choice"}


def test_malformed_tool_choice_costs_a_step_and_never_runs_anything(maintenance: MaintenanceRecords) -> None:
    program, kb = agent(maintenance, max_steps=2)
    result = run(program, [{"tool": "rm -rf", "tool_input": "x"}, {"tool": "drop_tables", "tool_input": "x"}], ALICE)
    assert result.answer == NO_ANSWER
    assert [s["tool"] for s in result.steps] == ["invalid choice", "invalid choice"]
    assert kb.calls == []


def test_the_step_bound_holds() -> None:
    calls: list[str] = []

    def make(i: int) -> Tool:
        def run_tool(tool_input: str, context: ToolContext) -> ToolResult:
            calls.append(f"t{i}")
            return ToolResult(f"result {i}")

        return Tool(f"t{i}", f"Tool number {i}.", run_tool)

    program = ToolAgent(ToolRegistry([make(i) for i in range(6)]), max_steps=3)
    choices = [{"tool": f"t{i}", "tool_input": "x"} for i in range(6)]
    result = run(program, [*choices[:3], FINAL], ALICE)
    assert calls == ["t0", "t1", "t2"] and len(result.steps) == 3


def test_a_tool_is_used_at_most_once_per_question(maintenance: MaintenanceRecords) -> None:
    program, kb = agent(maintenance, max_steps=3)
    again = {"tool": "search_documents", "tool_input": "another query"}
    result = run(program, [{"tool": "search_documents", "tool_input": "q"}, again, again, FINAL], ALICE)
    assert len(kb.calls) == 1
    assert [s["tool"] for s in result.steps] == ["search_documents", "invalid choice", "invalid choice"]


def test_finish_without_tools_says_it_could_not_find(maintenance: MaintenanceRecords) -> None:
    program, _ = agent(maintenance)
    result = run(program, [{"tool": "finish", "tool_input": ""}], ALICE)
    assert result.answer == NO_ANSWER


def test_failing_tool_is_an_observation() -> None:
    def broken(tool_input: str, context: ToolContext) -> ToolResult:
        raise RuntimeError("database locked")

    registry = ToolRegistry([Tool("broken", "Always fails.", broken)])
    program = ToolAgent(registry, max_steps=1)
    result = run(program, [{"tool": "broken", "tool_input": "x"}], ALICE)
    assert result.steps[0]["error"] and "database locked" in result.steps[0]["output"]


def test_user_tools_register_with_the_decorator() -> None:
    registry = ToolRegistry()

    @registry.register(description="Current weather at an airport. Input: an IATA code.")
    def weather(tool_input: str, context: ToolContext) -> ToolResult:
        return ToolResult(f"{tool_input}: clear")

    assert registry.names() == ["weather"]
    program = ToolAgent(registry, max_steps=1)
    result = run(program, [{"tool": "weather", "tool_input": "BOI"}, FINAL], ALICE)
    assert result.steps[0]["output"] == "BOI: clear"
    with pytest.raises(ValueError, match="reserved"):
        registry.add(Tool("finish", "x", weather))
    with pytest.raises(ValueError, match="description"):
        registry.add(Tool("silent", " ", weather))


def test_maintenance_inspections_are_narrowed_to_the_task_asked_about(maintenance: MaintenanceRecords) -> None:
    text = maintenance.answer("When is the next borescope inspection due on N417SK?").text
    lines = [line for line in text.splitlines() if line.startswith("Inspection")]
    assert lines and all("borescope" in line.lower() for line in lines)
    everything = maintenance.answer("Which inspections are due on N417SK?").text
    assert len([line for line in everything.splitlines() if line.startswith("Inspection")]) > len(lines)
