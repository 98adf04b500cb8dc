"""The multi-tool agent: choose a tool (or finish), run it, repeat within a step bound, then answer.

The choice is a class-based signature whose ``tool`` field is narrowed, per call, to a ``Literal``
of the tools the calling principal may use plus ``finish`` — so a constrained LM can only name a
real tool. A choice that is still unknown (an unconstrained remote LM) becomes an observation and
costs a step. The answer cites observation numbers, mapped back to the sources the tools returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import dspy
from dspy.utils.exceptions import AdapterParseError

from flywheel.access import Principal
from flywheel.programs.rag import as_history
from flywheel.tools.registry import ToolContext, ToolRegistry, ToolResult

FINISH = "finish"
NO_ANSWER = "I could not find the answer with the tools and documents available to you."


class ChooseTool(dspy.Signature):
    """You help an airline's staff. Decide the next step towards answering the question: call one of
    the available tools with a focused input, or choose 'finish' when the observations already answer
    the question or no tool can help."""

    question: str = dspy.InputField(desc="the user's question")
    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    tools: str = dspy.InputField(desc="the tools available, one per line as 'name: what it does'")
    observations: str = dspy.InputField(desc="numbered results of the tools called so far")
    tool: str = dspy.OutputField(desc="the name of the tool to call next, or 'finish'")
    tool_input: str = dspy.OutputField(desc="what to ask the tool (a query, a tail number, a message)")


class WriteAnswer(dspy.Signature):
    """Answer the question using only the numbered observations. Cite the numbers of the observations
    you used. If they do not contain the answer, say plainly that you could not find it."""

    question: str = dspy.InputField()
    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    observations: str = dspy.InputField(desc="numbered results of the tools called")
    answer: str = dspy.OutputField(desc="a concise answer grounded in the observations")
    citations: list[int] = dspy.OutputField(desc="numbers of the observations that support the answer")


@dataclass
class Step:
    tool: str
    tool_input: str
    result: ToolResult
    error: bool = False
    sources: list[dict[str, Any]] = field(default_factory=list)


def render_observations(steps: list[Step]) -> str:
    if not steps:
        return "(none yet)"
    return "\n\n".join(f"[{i}] {s.tool}({s.tool_input!r}) -> {s.result.text}" for i, s in enumerate(steps, 1))


class ToolAgent(dspy.Module):
    """Bounded tool-use loop with a final cited answer. Services are shared; the principal is per call."""

    def __init__(self, registry: ToolRegistry, services: dict[str, Any] | None = None, *, max_steps: int = 3) -> None:
        super().__init__()
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.registry = registry
        self.services = services or {}
        self.max_steps = max_steps
        self.choose = dspy.Predict(ChooseTool)
        self.respond = dspy.ChainOfThought(WriteAnswer)

    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        if not isinstance(principal, Principal):
            raise TypeError("ToolAgent needs the calling Principal (principal=...)")
        turns = as_history(history)
        tools = self.registry.for_principal(principal)
        names = [t.name for t in tools]
        menu = "\n".join(f"{t.name}: {t.description}" for t in tools) or "(no tools available)"
        signature = ChooseTool.with_updated_fields(
            "tool", type_=Literal[tuple([*names, FINISH])], desc="the tool to call next, or 'finish'"
        )
        context = ToolContext(principal, self.services)
        steps: list[Step] = []
        for _ in range(self.max_steps):
            try:
                choice = self.choose(signature=signature, question=question, history=turns, tools=menu,
                                     observations=render_observations(steps))
            except AdapterParseError as exc:  # an LM without constrained decoding named no valid tool
                steps.append(Step("invalid choice", "", ToolResult(f"Unusable tool choice: {exc.lm_response!r:.200}"),
                                  error=True))
                continue
            name, tool_input = str(choice.tool).strip(), str(choice.tool_input or question).strip()
            if name == FINISH:
                break
            steps.append(self._run(name, tool_input, context))
        if not steps or all(s.error for s in steps):
            return dspy.Prediction(answer=NO_ANSWER, citations=[], steps=[_describe(s) for s in steps])
        reply = self.respond(question=question, history=turns, observations=render_observations(steps))
        citations = []
        for number in reply.citations or []:
            if isinstance(number, int) and 1 <= number <= len(steps):
                citations += [src for src in steps[number - 1].sources if src not in citations]
        return dspy.Prediction(answer=reply.answer, citations=citations, steps=[_describe(s) for s in steps])

    def _run(self, name: str, tool_input: str, context: ToolContext) -> Step:
        tool = self.registry.get(name)
        if tool is None or not tool.allowed(context.principal):
            return Step(name, tool_input, ToolResult(f"There is no tool named {name!r}."), error=True)
        try:
            result = tool.func(tool_input, context)
        except Exception as exc:  # a failing tool is an observation, not a crash of the conversation
            return Step(name, tool_input, ToolResult(f"The tool failed: {exc}"), error=True)
        return Step(name, tool_input, result, sources=[{"tool": name, **s} for s in result.sources])


def _describe(step: Step) -> dict[str, Any]:
    return {"tool": step.tool, "input": step.tool_input, "output": step.result.text[:2000], "error": step.error}
