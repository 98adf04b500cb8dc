"""The built-in tools: document search, maintenance records, feedback classification."""

from __future__ import annotations

from functools import lru_cache

import dspy

from flywheel.programs.classify import FeedbackClassifier
from flywheel.tools.maintenance import maintenance_records
from flywheel.tools.registry import Tool, ToolContext, ToolRegistry, ToolResult, default_registry


def search_documents(tool_input: str, context: ToolContext) -> ToolResult:
    """Search the company's documents (manuals, bulletins, procedures, policies) that you may read.
    Input: a search query."""
    hits = context.service("knowledge").search(context.principal, tool_input, k=4)
    if not hits:
        return ToolResult("No passages found in the documents you may read.")
    text = "\n".join(f"({h.citation()}) {h.text}" for h in hits)
    sources = tuple({"chunk_id": h.chunk_id, "doc_id": h.doc_id, "citation": h.citation()} for h in hits)
    return ToolResult(text, sources)


@lru_cache(maxsize=1)
def _default_classifier() -> dspy.Module:
    return FeedbackClassifier()


def classify_feedback(tool_input: str, context: ToolContext) -> ToolResult:
    """Classify a piece of customer feedback (sentiment). Input: the customer's message."""
    classifier = context.services.get("classifier") or _default_classifier()
    label = classifier(text=tool_input)
    reason = getattr(label, "reason", None)
    return ToolResult(f"sentiment: {label.sentiment}" + (f"; reason: {reason}" if reason else ""))


def builtin_tools() -> list[Tool]:
    return [
        Tool(
            "search_documents",
            (search_documents.__doc__ or "").strip(),
            search_documents,
            examples=(
                "What does the manual say about oil servicing?",
                "What is the brake wear limit?",
                "What is the refund policy for cancelled flights?",
            ),
        ),
        Tool(
            "maintenance_records",
            (maintenance_records.__doc__ or "").strip(),
            maintenance_records,
            frozenset({"mechanics", "pilots"}),
            examples=(
                "Which deferred defects are open on N401SK?",
                "Which inspections are overdue?",
                "When is the next inspection due on aircraft N412SK?",
            ),
        ),
        Tool(
            "classify_feedback",
            (classify_feedback.__doc__ or "").strip(),
            classify_feedback,
            frozenset({"customer-support", "management"}),
            examples=("Classify this customer message: my bag was lost", "Is this feedback positive?"),
        ),
    ]


def default_tools(extra: ToolRegistry | None = None) -> ToolRegistry:
    """The built-in tools plus any registered with ``@flywheel.tools.tool``."""
    registry = ToolRegistry(builtin_tools())
    for source in (default_registry, extra):
        for name in source.names() if source else []:
            registry.add(source.get(name))  # type: ignore[arg-type,union-attr]
    return registry
