"""The multi-tool agent: choose a tool (or finish), run it, repeat within a step bound, then answer.

The choice is a class-based signature whose ``tool`` field is narrowed, per call, to a ``Literal``
of the tools the calling principal may use plus ``finish`` — so a constrained LM can only name a
real tool. A choice that is still unknown (an unconstrained remote LM) becomes an observation and
costs a step. The answer cites observation numbers, mapped back to the sources the tools returned.

Tools are offered in order of relevance to the question (tool retrieval: embedding similarity of
the question to each tool's description and examples), each at most once per question, and once a
tool has answered, ``finish`` is offered first. A capable LM chooses freely among them; a small one
leans on the order, which is what keeps the embedded 135M model on the right tool.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dspy
import numpy as np
from dspy.utils.exceptions import AdapterParseError

from flywheel.access import Principal
from flywheel.programs.demos import ReadableCheck, remember_sources, visible_demos
from flywheel.programs.rag import as_history
from flywheel.tools.registry import Tool, ToolContext, ToolRegistry, ToolResult

ToolRanker = Callable[[str, Sequence[Tool]], list[Tool]]

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
    """Answer the question from the numbered observations in one short sentence: give the value asked
    for together with what the observations say about it (its status, due date, limit or condition).
    Cite the numbers of the observations you used. If they do not contain the answer, say plainly that
    you could not find it."""

    question: str = dspy.InputField()
    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    observations: str = dspy.InputField(desc="numbered results of the tools called")
    answer: str = dspy.OutputField(desc="one sentence with the value and its status, from the observations")
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


def lexical_ranker(question: str, tools: Sequence[Tool]) -> list[Tool]:
    """Tools ordered by word overlap between the question and each tool's profile (stable)."""
    words = set(re_words(question))
    return sorted(tools, key=lambda t: -len(words & set(re_words(t.profile()))))


def re_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2]


class EmbeddingToolRanker:
    """Tools ordered by cosine similarity of the question to each tool's profile (cached vectors)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self._profiles: dict[str, np.ndarray] = {}

    def __call__(self, question: str, tools: Sequence[Tool]) -> list[Tool]:
        missing = [t for t in tools if t.name not in self._profiles]
        if missing:
            # A tool's profile: the mean of its description's and its examples' vectors.
            for t in missing:
                vectors = self.embedder.embed([t.description, *t.examples])
                mean = vectors.mean(axis=0)
                self._profiles[t.name] = mean / (np.linalg.norm(mean) or 1.0)
        query = self.embedder.embed([question])[0]
        return sorted(tools, key=lambda t: -float(query @ self._profiles[t.name]))


class ToolAgent(dspy.Module):
    """Bounded tool-use loop with a final cited answer. Services are shared; the principal is per call."""

    def __init__(
        self,
        registry: ToolRegistry,
        services: dict[str, Any] | None = None,
        *,
        max_steps: int = 3,
        ranker: ToolRanker | None = None,
        reasoning: bool = False,
        readable: ReadableCheck | None = None,
    ) -> None:
        super().__init__()
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.registry = registry
        self.services = services or {}
        self.max_steps = max_steps
        self.readable = readable
        embedder = getattr(self.services.get("knowledge"), "embedder", None)
        self.ranker: ToolRanker = ranker or (EmbeddingToolRanker(embedder) if embedder else lexical_ranker)
        # A tool choice is a name and a short input: a small token budget bounds a looping LM.
        self.choose = dspy.Predict(ChooseTool, max_tokens=160)
        # A reasoning step only where the LM can use it (programs.reasoning), as for the RAG chatbot.
        self.reasoning = reasoning
        self.respond = dspy.ChainOfThought(WriteAnswer) if reasoning else dspy.Predict(WriteAnswer, max_tokens=200)

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        return {**super().dump_state(json_mode=json_mode), "agent_config": {"reasoning": self.reasoning}}

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> None:
        reasoning = bool((state.get("agent_config") or {}).get("reasoning", "respond.predict" in state))
        if reasoning != self.reasoning:
            self.reasoning = reasoning
            self.respond = dspy.ChainOfThought(WriteAnswer) if reasoning else dspy.Predict(WriteAnswer, max_tokens=200)
        super().load_state(state, **kwargs)

    def tools_allowed(self, principal: Principal, names: Sequence[str]) -> bool:
        """Whether the principal may use every one of these tools (and so see their outputs)."""
        return all((tool := self.registry.get(n)) is not None and tool.allowed(principal) for n in names)

    def _demos(self, predictor: dspy.Predict, principal: Principal) -> list[Any]:
        """The demos this principal may see: tool outputs only from documents they can read and tools
        they may use (demos with observations but no provenance are never shown)."""
        return visible_demos(predictor.demos, principal, self.readable, self.tools_allowed)

    def _observations(self, steps: list[Step]) -> str:
        """The numbered observations, with their provenance recorded for the optimizer's demos."""
        text = render_observations(steps)
        doc_ids = [src["doc_id"] for s in steps for src in s.sources if "doc_id" in src]
        remember_sources(text, doc_ids, tools=[s.tool for s in steps])
        return text

    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        if not isinstance(principal, Principal):
            raise TypeError("ToolAgent needs the calling Principal (principal=...)")
        turns = as_history(history)
        tools = self.ranker(question, self.registry.for_principal(principal))
        names = [t.name for t in tools]
        menu = "\n".join(f"{t.name}: {t.description}" for t in tools) or "(no tools available)"
        context = ToolContext(principal, self.services)
        steps: list[Step] = []
        for _ in range(self.max_steps):
            # Each tool at most once per question; after a useful answer, finishing is offered first.
            unused = [n for n in names if n not in {s.tool for s in steps}]
            options = [FINISH, *unused] if any(not s.error for s in steps) else [*unused, FINISH]
            signature = ChooseTool.with_updated_fields(
                "tool", type_=Literal[tuple(options)], desc="the tool to call next, or 'finish'"
            )
            try:
                choice = self.choose(
                    signature=signature,
                    question=question,
                    history=turns,
                    tools=menu,
                    observations=self._observations(steps),
                    demos=self._demos(self.choose, principal),
                )
            except AdapterParseError as exc:  # an LM without constrained decoding named no valid tool
                steps.append(
                    Step(
                        "invalid choice", "", ToolResult(f"Unusable tool choice: {exc.lm_response!r:.200}"), error=True
                    )
                )
                continue
            name, tool_input = str(choice.tool).strip(), str(choice.tool_input or "").strip()
            if not tool_input or tool_input in names:  # a small LM sometimes echoes a tool name as the input
                tool_input = question
            if name == FINISH or any(s.tool == name and s.tool_input == tool_input for s in steps):
                break  # finishing, or repeating a call whose answer is already in the observations
            steps.append(self._run(name, tool_input, context))
        if not steps or all(s.error for s in steps):
            return dspy.Prediction(answer=NO_ANSWER, citations=[], steps=[_describe(s) for s in steps])
        answer_step = self.respond.predict if isinstance(self.respond, dspy.ChainOfThought) else self.respond
        reply = self.respond(
            question=question,
            history=turns,
            observations=self._observations(steps),
            demos=self._demos(answer_step, principal),
        )
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
