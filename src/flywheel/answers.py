"""What every interface returns for one question: the answer, its sources, and how it was produced.

:class:`Answer` is built from a program's prediction once (:meth:`Answer.from_prediction`) and read by
the assistant, the service, traces and the MLflow model, so none of them converts a DSPy prediction on
its own. :func:`question_and_history` is the one place OpenAI-style chat messages become a question
and the conversation before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flywheel.errors import InvalidInputError

Turn = dict[str, str]  # {"question": …, "answer": …}: one earlier exchange, as DSPy History messages


@dataclass(frozen=True)
class Answer:
    """One program call's result: the answer, what it cites, what it read, and where it came from."""

    answer: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    passages: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)  # the agent's tool calls
    trace_id: str | None = None
    program: str | None = None
    program_version: int | None = None
    conversation_id: str | None = None

    @classmethod
    def from_prediction(cls, prediction: Any, **provenance: Any) -> Answer:
        """A DSPy prediction (or anything with ``answer`` and optional ``citations``, ``passages``, ``steps``)
        as an Answer; non-dict citations are dropped. ``provenance``: trace_id, program, program_version,
        conversation_id."""
        return cls(
            answer=str(getattr(prediction, "answer", "") or ""),
            citations=[dict(c) for c in (getattr(prediction, "citations", None) or []) if isinstance(c, Mapping)],
            passages=list(getattr(prediction, "passages", None) or []),
            steps=list(getattr(prediction, "steps", None) or []),
            **provenance,
        )

    def trace_outputs(self) -> dict[str, Any]:
        """What a trace records: the answer and chunk ids, not whole passages."""
        return {
            "answer": self.answer,
            "retrieved_chunk_ids": [p.get("chunk_id") for p in self.passages if isinstance(p, Mapping)],
            "cited": [c.get("chunk_id") or c.get("record") or c.get("tool") for c in self.citations],
            "steps": [s.get("tool") for s in self.steps if isinstance(s, Mapping)],
        }

    def as_dict(self, *fields: str) -> dict[str, Any]:
        """The named fields (all when none are named), as plain data for JSON responses and DataFrames."""
        return {name: getattr(self, name) for name in (fields or self.__dataclass_fields__)}

    def chunk_ids(self) -> list[Any]:
        return [p.get("chunk_id") for p in self.passages if isinstance(p, Mapping)]


def question_and_history(messages: Iterable[tuple[str, str]]) -> tuple[str, list[Turn]]:
    """(role, text) chat messages → the last user message, and the earlier user → assistant exchanges as
    turns. Other roles (system, tool …) are skipped; a user message that got no answer before the next
    one is kept as a turn with an empty answer; the last message must be a non-empty user message."""
    turns: list[Turn] = []
    pending: str | None = None
    last_role = None
    for role, text in messages:
        if role == "user":
            if pending is not None:
                turns.append({"question": pending, "answer": ""})
            pending = text
        elif role == "assistant" and pending is not None:
            turns.append({"question": pending, "answer": text})
            pending = None
        if role in ("user", "assistant"):
            last_role = role
    if last_role != "user" or pending is None or not pending.strip():
        raise InvalidInputError(
            "The last message must be a non-empty user message.",
            hint='End the messages with {"role": "user", "content": "your question"}.',
        )
    return pending, turns


def stream_pieces(text: str) -> list[str]:
    """Words with their following whitespace: the pieces a streamed answer arrives in."""
    return re.findall(r"\S+\s*|\s+", text) or [""]
