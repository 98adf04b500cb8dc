"""Per-request overhead of the RAG chatbot and the agent, excluding LM and embedding time.

The programs run against an LM engine that answers instantly (a canned, schema-valid JSON reply)
and a retriever/knowledge stub that returns fixed passages, so what remains is Flywheel + DSPy
work per request: formatting prompts, parsing outputs, control flow, citation mapping. It is put
next to the time of one real embedded-LM call on the same prompt (the goal: ≤ 2 %).

Run: python -m bench.programs [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

from bench.report import markdown_table, median, write_section
from flywheel.access import Principal
from flywheel.assistant.builtin_tools import default_tools
from flywheel.config import LMSettings
from flywheel.lm import build_lm
from flywheel.programs.agent import ToolAgent, lexical_ranker
from flywheel.programs.rag import Passage, RAGChatbot

PASSAGES = [
    Passage(f"d{i}:1:0", f"d{i}", f"manual-{i}.md §{i}", "Check the oil 5 to 30 minutes after shutdown. " * 8)
    for i in range(4)
]
ALICE = Principal("alice", frozenset({"mechanics"}))


class InstantEngine:
    """Answers every request at once with a valid object for the requested schema."""

    supports_response_schema = True
    supported_params = frozenset({"temperature", "max_tokens", "response_format"})

    def complete(self, request: Any) -> Response:
        schema = (request.config.response_format or {}).get("schema", {})
        reply = {}
        for name, spec in schema.get("properties", {}).items():
            if "enum" in spec:
                reply[name] = spec["enum"][0]
            elif spec.get("type") == "array":
                reply[name] = [1]
            elif spec.get("type") == "boolean":
                reply[name] = True
            else:
                reply[name] = "Within 30 minutes of shutdown."
        return Response(
            id=None,
            model=request.model,
            message=Message.assistant([TextPart(json.dumps(reply))]),
            finish_reason="stop",
            usage=Usage(input_tokens=1, output_tokens=1),
        )


class StubKnowledge:
    embedder = None

    def search(self, principal: Principal, query: str, k: int = 4) -> list[Any]:
        class Hit:
            def __init__(self, p: Passage) -> None:
                self.chunk_id, self.doc_id, self.text, self._c = p.chunk_id, p.doc_id, p.text, p.citation

            def citation(self) -> str:
                return self._c

        return [Hit(p) for p in PASSAGES[:k]]


def per_request(program: dspy.Module, lm: dspy.LM, requests: int, **kwargs: Any) -> float:
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        for _ in range(10):
            program(**kwargs)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            program(**kwargs)
            times.append(time.perf_counter() - started)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    instant = dspy.LM("embedded/instant", engine=InstantEngine(), cache=False)
    rag = RAGChatbot(lambda q, p, k: PASSAGES[:k])
    agent = ToolAgent(default_tools(), {"knowledge": StubKnowledge()}, max_steps=1, ranker=lexical_ranker)
    real = build_lm(LMSettings(cache=False))
    question = "When should the engine oil be checked?"
    rag_overhead = per_request(rag, instant, args.requests, question=question, principal=ALICE)
    agent_overhead = per_request(agent, instant, args.requests, question=question, principal=ALICE)
    # One real embedded-LM call: the RAG answer step on the same passages (3 timed runs).
    with dspy.context(lm=real, adapter=dspy.JSONAdapter()):
        rag(question=question, principal=ALICE)
        lm_call = median([_timed(lambda: rag(question=question, principal=ALICE)) for _ in range(3)])
    rows = [
        [
            "RAG chatbot (1 LM call per request)",
            f"{rag_overhead * 1000:.2f}",
            f"{lm_call * 1000:.0f}",
            f"{rag_overhead / lm_call:.2%}",
        ],
        [
            "Agent, 1 tool step (2 LM calls + tool)",
            f"{agent_overhead * 1000:.2f}",
            f"{lm_call * 1000:.0f}",
            f"{agent_overhead / lm_call:.2%}",
        ],
    ]
    table = markdown_table(["program", "overhead ms/request", "one embedded LM call ms", "overhead / LM call"], rows)
    print(table)
    body = (
        "Median over the timed requests after 10 warm-up requests. Overhead = the program run against an "
        "LM that answers instantly and a stub retriever (no LM, no embedding time). The LM call is the same "
        "RAG request with the real embedded SmolLM2.\n\n" + table
    )
    write_section(
        "programs", "Programs: per-request overhead excluding LM and embedding", body, "python -m bench.programs"
    )


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
