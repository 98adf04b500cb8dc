"""Few-shot demos for programs that read documents: provenance, access control and selection.

A demo of an answer step embeds passages, and passages come from documents that not every user may
read. Every such demo carries the ids of the documents behind it (``source_doc_ids``) and, at
request time, is shown only to a principal who may read every one of them *now* (the catalog's
current groups, not those at compile time). A demo with passages but no provenance is never shown:
the check fails closed.

Demos come from two places:

- **bootstrapped** by an optimizer from the program's own traces: their provenance is looked up from
  the passage blocks the program formatted (:func:`remember_sources`, :func:`annotate_demo_sources`);
- **labelled** from dataset rows (question, gold answer, the gold documents' best passages):
  :func:`labelled_demo`, with provenance = the row's gold documents. A weak model has few correct
  traces to bootstrap from, so labelled demos are what teach it the answer's form.

Small models get few, short demos: :class:`DemoSelector` shows at most ``max_demos`` of the visible
ones, either in their stored order or the nearest to the question (KNN over question embeddings).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal

import dspy
import numpy as np

from flywheel.access import Principal

SOURCE_FIELD = "source_doc_ids"
TOOLS_FIELD = "source_tools"
# Inputs that carry document or record content: a demo with either must have provenance.
CONTENT_FIELDS = ("passages", "observations")
DemoSelection = Literal["fixed", "knn"]
# Which of these document ids may the principal read now? (checked against the catalog per request)
ReadableCheck = Callable[[Principal, Sequence[str]], set[str]]
# May the principal use every one of these tools (and so see what they return)?
ToolsAllowed = Callable[[Principal, Sequence[str]], bool]
Embed = Callable[[list[str]], np.ndarray]

_SOURCES: OrderedDict[str, tuple[tuple[str, ...], tuple[str, ...]]] = OrderedDict()
_SOURCES_LOCK = threading.Lock()
_SOURCES_MAX = 4096


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def remember_sources(passages_text: str, doc_ids: Sequence[str], tools: Sequence[str] = ()) -> None:
    """Record which documents (and which tools' outputs) a formatted context block came from
    (bounded, process-local)."""
    key = _key(passages_text)
    with _SOURCES_LOCK:
        _SOURCES[key] = (tuple(dict.fromkeys(doc_ids)), tuple(dict.fromkeys(tools)))
        _SOURCES.move_to_end(key)
        while len(_SOURCES) > _SOURCES_MAX:
            _SOURCES.popitem(last=False)


def provenance_of(context_text: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(documents, tools) behind a context block this process formatted, or None if unknown."""
    with _SOURCES_LOCK:
        return _SOURCES.get(_key(context_text))


def _content(demo: Any) -> str | None:
    if not hasattr(demo, "get"):
        return None
    for name in CONTENT_FIELDS:
        value = demo.get(name)
        if value and str(value) != "(none yet)":
            return str(value)
    return None


def annotate_demo_sources(program: dspy.Module) -> int:
    """Attach provenance (documents, tools) to every demo that embeds passages or tool observations;
    drop demos whose content cannot be attributed. Returns the number of demos dropped."""
    dropped = 0
    for _, predictor in program.named_predictors():
        kept = []
        for demo in predictor.demos:
            content = _content(demo)
            if content is None or demo.get(SOURCE_FIELD) is not None or demo.get(TOOLS_FIELD) is not None:
                kept.append(demo)
                continue
            found = provenance_of(content)
            if found is None:
                dropped += 1
                continue
            demo[SOURCE_FIELD], demo[TOOLS_FIELD] = list(found[0]), list(found[1])
            kept.append(demo)
        predictor.demos = kept
    return dropped


def visible_demos(
    demos: Sequence[Any],
    principal: Principal,
    readable: ReadableCheck | None,
    tools_allowed: ToolsAllowed | None = None,
) -> list[Any]:
    """The demos this principal may see: those without passages or observations, and those whose
    source documents the principal can read now (one catalog query for all of them) and whose tools
    the principal may use. A demo with content but no provenance is never shown (fail closed)."""
    needed = {d for demo in demos if _content(demo) for d in (demo.get(SOURCE_FIELD) or [])}
    allowed = readable(principal, sorted(needed)) if (needed and readable is not None) else set()
    shown = []
    for demo in demos:
        if _content(demo) is None:
            shown.append(demo)
            continue
        sources, tools = demo.get(SOURCE_FIELD) or [], demo.get(TOOLS_FIELD) or []
        if not sources and not tools:
            continue
        if not set(sources) <= allowed:
            continue
        if tools and (tools_allowed is None or not tools_allowed(principal, tools)):
            continue
        shown.append(demo)
    return shown


def labelled_demo(
    question: str, answer: str, passages_text: str, source_doc_ids: Sequence[str], **outputs: Any
) -> dspy.Example:
    """A demo built from a labelled row: the gold answer over the gold documents' passages."""
    if not source_doc_ids:
        raise ValueError("a labelled demo needs the ids of the documents its passages come from")
    return dspy.Example(
        question=question,
        passages=passages_text,
        history=dspy.History(messages=[]),
        answer=answer,
        **outputs,
        **{SOURCE_FIELD: list(dict.fromkeys(source_doc_ids))},
    )


class DemoSelector:
    """At most ``max_demos`` of the visible demos: the first ones, or the nearest to the question."""

    def __init__(self, embed: Embed | None = None, *, selection: DemoSelection = "fixed", max_demos: int = 2) -> None:
        self.embed = embed
        self.selection = selection
        self.max_demos = max_demos
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> DemoSelector:
        return DemoSelector(self.embed, selection=self.selection, max_demos=self.max_demos)

    def select(self, demos: Sequence[Any], question: str) -> list[Any]:
        if self.max_demos <= 0 or not demos:
            return []
        if self.selection != "knn" or self.embed is None or len(demos) <= self.max_demos:
            return list(demos[: self.max_demos])
        questions = [str(d.get("question", "")) for d in demos]
        vectors = self._question_vectors(questions)
        query = np.asarray(self.embed([question])[0], dtype=np.float32)
        scores = vectors @ query
        order = np.argsort(-scores, kind="stable")[: self.max_demos]
        # Nearest last: small models weigh the example closest to the question most.
        return [demos[i] for i in reversed(order.tolist())]

    def _question_vectors(self, questions: list[str]) -> np.ndarray:
        with self._lock:
            missing = [q for q in dict.fromkeys(questions) if q not in self._vectors]
        if missing:
            computed = np.asarray(self.embed(missing), dtype=np.float32)  # type: ignore[misc]
            with self._lock:
                self._vectors.update(zip(missing, computed, strict=True))
        with self._lock:
            return np.stack([self._vectors[q] for q in questions])
