"""Quoted answers: the sentence of the retrieved passages that answers the question best.

A 135M model asked for "a short phrase from the passages" mostly restates the question or copies the
start of a passage (answer F1 ≈ 0.15 on wiki_qa's non-yes/no questions). The passage sentence most
similar to the question, quoted verbatim with its citation, scores about twice that on the same
questions (measured on the training articles; see docs/benchmarks.md), and it cannot be a
hallucination: every word is in a document the caller may read. Values are the exception: a
generated phrase with a number that a passage holds verbatim (a torque, a fee, a date) is kept
(:func:`is_grounded_value`), since a sentence around it is a worse answer. ``RAGConfig.answer_style`` chooses
between quoting and generating, per LM (quote for the embedded model, generate for endpoints) and in
the optimizer's design search.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

P = TypeVar("P")
Embed = Callable[[list[str]], Any]

# Sentence ends (. ! ? followed by a capital, digit or quote; Japanese/Chinese 。！？) and line breaks
# (lists, tables, headings).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|(?<=[。！？])\s*|\s*\n+\s*")
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
MIN_WORDS = 3
MIN_CJK_CHARACTERS = 6  # CJK text has no spaces: a "word" of \w+ is a whole clause
_FUNCTION_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "with",
    }
)


def sentences(text: str) -> list[str]:
    """The sentences (and list items / table rows) of ``text`` with at least three words (six CJK characters)."""
    return [
        s.strip()
        for s in _SENTENCE_END.split(text)
        if len(_WORD.findall(s)) >= MIN_WORDS or len(_CJK.findall(s)) >= MIN_CJK_CHARACTERS
    ]


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _FUNCTION_WORDS}


def best_sentence(
    question: str, passages: Sequence[P], text_of: Callable[[P], str], embed: Embed | None = None
) -> tuple[str, P] | None:
    """The sentence most similar to ``question`` among the passages' sentences, with its passage.

    Similarity is the embedder's cosine when one is given (the knowledge base's own), else the
    share of the question's content words the sentence contains. None when no passage has a sentence.
    """
    candidates = [(sentence, passage) for passage in passages for sentence in sentences(text_of(passage))]
    if not candidates:
        return None
    if embed is not None:
        vectors = np.asarray(embed([question] + [s for s, _ in candidates]), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        vectors = vectors / norms[:, None]
        scores = vectors[1:] @ vectors[0]
    else:
        asked = content_words(question)
        scores = np.array([len(asked & content_words(s)) / (len(asked) or 1) for s, _ in candidates])
    return candidates[int(np.argmax(scores))]


def _normalized(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def is_grounded_value(answer: str, question: str, passages: Sequence[str]) -> bool:
    """Whether a generated answer states a value a passage holds: it has a number the question does not,
    and the whole answer occurs in one of the passages. Small models extract such values well (a torque,
    a fee, a date), while their prose answers mostly restate the question."""
    asked = set(_WORD.findall(question.lower()))
    numbers = {w for w in _WORD.findall(answer.lower()) if any(c.isdigit() for c in w)} - asked
    phrase = _normalized(answer)
    if not (numbers and phrase and any(phrase in _normalized(p) for p in passages)):
        return False
    if _LETTER.search(answer):
        return True
    # A bare number ("1.1", "4"): a value only where a passage states it, not where it labels a section
    # or list item ("1.1 This task card covers…"), which small models copy as the answer.
    return any(_states_number(answer.strip(" .:;,"), p) for p in passages)


_LETTER = re.compile(r"[^\W\d_]")
_LABEL_PREFIX = re.compile(r"(?:^|\n)[ \t#>*\-§]*$")


def _states_number(number: str, passage: str) -> bool:
    """Whether ``number`` occurs in ``passage`` other than as a label at the start of a line."""
    for match in re.finditer(rf"(?<![\w.]){re.escape(number)}(?![\w]|\.\d)", passage):
        is_label = _LABEL_PREFIX.search(passage[: match.start()]) and passage[match.end() : match.end() + 1] in (
            " ",
            "\t",
            ".",
        )
        if not is_label:
            return True
    return False
