"""The RAG chatbot: condense the conversation into a query, retrieve as the caller, answer with citations.

The principal is an argument of every call (never global state), and retrieval goes through the
ACL-bound knowledge base, so the passages a prompt can contain are exactly those the caller may
read. Citations are passage numbers chosen by the LM, mapped back to real chunk ids; numbers that
point at no retrieved passage are dropped. With no passage retrieved, the program answers that
the documents do not contain the answer without calling the LM at all.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dspy

from flywheel.access import Principal

NOT_FOUND = "I could not find the answer in the documents available to you."


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as programs see it."""

    chunk_id: str
    doc_id: str
    citation: str
    text: str


Retriever = Callable[[str, Principal, int], Sequence[Passage]]
# Which of these document ids may the principal read now? (checked against the catalog per request)
ReadableCheck = Callable[[Principal, Sequence[str]], set[str]]


def knowledge_retriever(kb: Any) -> Retriever:
    """A retriever over a :class:`~flywheel.knowledge.base.KnowledgeBase` (ACL applied inside the query)."""

    def retrieve(query: str, principal: Principal, k: int) -> list[Passage]:
        return [Passage(h.chunk_id, h.doc_id, h.citation(), h.text) for h in kb.search(principal, query, k=k)]

    return retrieve


def knowledge_readable(kb: Any) -> ReadableCheck:
    """The documents among ``doc_ids`` that ``principal`` may read, from the catalog's current groups."""

    def readable(principal: Principal, doc_ids: Sequence[str]) -> set[str]:
        wanted = set(doc_ids)
        return {d.id for d in kb.catalog.list_documents() if d.id in wanted and principal.can_read(d.groups)}

    return readable


class CondenseQuestion(dspy.Signature):
    """Rewrite the latest question as a standalone search query for the company's documents,
    resolving pronouns and references with the conversation so far."""

    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    question: str = dspy.InputField(desc="the user's latest message")
    query: str = dspy.OutputField(desc="a short, self-contained search query")


class AnswerFromPassages(dspy.Signature):
    """Answer the question using only the numbered passages. Cite the numbers of the passages that
    support the answer. If the passages do not contain the answer, set found to false and say so
    instead of guessing."""

    passages: str = dspy.InputField(desc="numbered passages, e.g. [1] text…")
    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="a concise answer grounded in the passages")
    citations: list[int] = dspy.OutputField(desc="numbers of the passages that support the answer")
    found: bool = dspy.OutputField(desc="true if the passages contain the answer")


def format_passages(passages: Sequence[Passage]) -> str:
    return "\n\n".join(f"[{i}] ({p.citation}) {p.text}" for i, p in enumerate(passages, 1))


def as_history(history: Any) -> dspy.History:
    """Accept a dspy.History, a list of {question, answer} turns, or None."""
    if isinstance(history, dspy.History):
        return history
    return dspy.History(messages=list(history or []))


class RAGChatbot(dspy.Module):
    """Retrieval-augmented chatbot over the knowledge base, with citations and honest refusals."""

    def __init__(self, retriever: Retriever | None = None, *, k: int = 4,
                 readable: ReadableCheck | None = None) -> None:
        super().__init__()
        self.retriever = retriever
        self.readable = readable
        self.k = k
        self.condense = dspy.ChainOfThought(CondenseQuestion)
        self.respond = dspy.ChainOfThought(AnswerFromPassages)

    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        if self.retriever is None:
            raise RuntimeError("RAGChatbot has no retriever: pass knowledge_retriever(kb) when building it.")
        if not isinstance(principal, Principal):
            raise TypeError("RAGChatbot needs the calling Principal (principal=...)")
        turns = as_history(history)
        # The first turn is already standalone; a rewrite would only cost a call and add noise.
        query = self.condense(history=turns, question=question).query if turns.messages else question
        passages = list(self.retriever(query, principal, self.k))
        if not passages:
            return dspy.Prediction(answer=NOT_FOUND, citations=[], passages=[], found=False, query=query)
        context = format_passages(passages)
        remember_sources(context, [p.doc_id for p in passages])
        reply = self.respond(passages=context, history=turns, question=question,
                             demos=visible_demos(self.respond.predict.demos, principal, self.readable))
        cited = cited_passages(reply.citations, passages)
        found = bool(reply.found) and bool(reply.answer.strip())
        return dspy.Prediction(
            answer=reply.answer if found else NOT_FOUND,
            citations=[asdict(p) for p in cited] if found else [],
            passages=[asdict(p) for p in passages],
            found=found,
            query=query,
            reasoning=getattr(reply, "reasoning", ""),
        )


def cited_passages(numbers: Any, passages: Sequence[Passage]) -> list[Passage]:
    """The passages behind the LM's citation numbers: out-of-range and repeated numbers dropped."""
    chosen: list[Passage] = []
    for number in numbers or []:
        try:
            index = int(number)
        except (TypeError, ValueError):
            continue
        if 1 <= index <= len(passages) and passages[index - 1] not in chosen:
            chosen.append(passages[index - 1])
    return chosen


# --- ACL-safe few-shot demos -----------------------------------------------------------------------
#
# An optimizer's bootstrapped demos for the answer step embed the passages of a training question.
# Each demo is annotated (after compiling) with the ids of the documents behind its passages, and
# at request time a demo is shown only to a principal who may read every one of those documents
# *now* (the catalog's current groups, not those at compile time). Demos with passages but no
# provenance are never shown: the check fails closed.

_SOURCES: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_SOURCES_LOCK = threading.Lock()
_SOURCES_MAX = 4096
SOURCE_FIELD = "source_doc_ids"


def remember_sources(passages_text: str, doc_ids: Sequence[str]) -> None:
    """Record which documents a formatted passage block came from (bounded, process-local)."""
    key = hashlib.sha256(passages_text.encode()).hexdigest()
    with _SOURCES_LOCK:
        _SOURCES[key] = tuple(dict.fromkeys(doc_ids))
        _SOURCES.move_to_end(key)
        while len(_SOURCES) > _SOURCES_MAX:
            _SOURCES.popitem(last=False)


def sources_of(passages_text: str) -> tuple[str, ...] | None:
    with _SOURCES_LOCK:
        return _SOURCES.get(hashlib.sha256(passages_text.encode()).hexdigest())


def annotate_demo_sources(program: dspy.Module) -> int:
    """Attach document provenance to every demo that embeds passages; drop demos whose passages
    cannot be attributed. Returns the number of demos dropped."""
    dropped = 0
    for _, predictor in program.named_predictors():
        kept = []
        for demo in predictor.demos:
            passages = demo.get("passages") if hasattr(demo, "get") else None
            if not passages or demo.get(SOURCE_FIELD) is not None:
                kept.append(demo)
                continue
            sources = sources_of(str(passages))
            if sources is None:
                dropped += 1
                continue
            demo[SOURCE_FIELD] = list(sources)
            kept.append(demo)
        predictor.demos = kept
    return dropped


def visible_demos(demos: Sequence[Any], principal: Principal, readable: ReadableCheck | None) -> list[Any]:
    """The demos this principal may see: those without passages, and those whose source documents
    the principal can read now."""
    needed = {d for demo in demos if demo.get("passages") for d in (demo.get(SOURCE_FIELD) or [])}
    allowed = readable(principal, sorted(needed)) if (needed and readable is not None) else set()
    shown = []
    for demo in demos:
        if not demo.get("passages"):
            shown.append(demo)
            continue
        sources = demo.get(SOURCE_FIELD)
        if sources and set(sources) <= allowed:
            shown.append(demo)
    return shown
