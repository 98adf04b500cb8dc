"""Answer spans: the clause of the quoted sentence that answers the question, chosen by a ranker that
``flywheel optimize`` fits on labelled rows.

Quoting the passage sentence most similar to the question (:mod:`flywheel.programs.quote`) is the
embedded model's default; a short gold answer ("British East India Company") is often one clause of
that sentence ("In 1819, the British East India Company, led by Sir Stamford Raffles, established a
trading post…"), and the question's own words are rarely part of the answer. :class:`SpanRanker` scores
the sentence and its clauses (split at commas, semicolons, colons, brackets, dashes and relative
pronouns; alone and in adjacent runs) with a linear model over generic features — similarity to the
question, the share of the span that merely repeats the question, new words, length, numbers/years/
capitalised words against the question's wh-word — and returns the best, which may be the sentence.

Nothing here is fitted to a corpus: the weights come from ``flywheel optimize`` on the user's labelled
rows (:mod:`flywheel.optimize.answer_spans`), are stored with the program version as plain floats in
JSON (never a pickle), and the optimizer keeps the ranker only when the program scores higher with it
on a validation split. Every span is verbatim text of a passage the caller may read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flywheel.errors import InvalidInputError
from flywheel.programs.quote import Embed, content_words

RANKER_FORMAT = "flywheel.span-ranker/1"
MAX_RUN = 3  # clauses joined into one candidate at most
_CLAUSE_BREAK = re.compile(r"\s*[,;:()\[\]]\s*|\s+[–—-]\s+|\s+(?=(?:which|who|whose|where|when|while|because)\b)")
_EDGE = re.compile(r"^[\s\"'.,;:!?-]+|[\s\"'.,;:!?-]+$")
_WORD = re.compile(r"\w+")
_YEAR = re.compile(r"\b(1\d{3}|20\d{2})\b")
WH_TYPES = ("who", "when", "where", "how_many", "what", "why_how", "other")


def question_type(question: str) -> str:
    """The wh-type of a question, as the features see it."""
    words = _WORD.findall(question.lower())
    first = set(words[:3])
    text = " ".join(words)
    if "how many" in text or "how much" in text or "how old" in text or "how long" in text or "how far" in text:
        return "how_many"
    if "who" in first or "whom" in first or "whose" in first:
        return "who"
    if "when" in first or "year" in words[:4] or "since" in first:
        return "when"
    if "where" in first:
        return "where"
    if "why" in first or "how" in first:
        return "why_how"
    if "what" in first or "which" in first:
        return "what"
    return "other"


def clause_runs(sentence: str) -> list[str]:
    """The sentence's clauses (split at commas, semicolons, colons, brackets, dashes and relative
    pronouns) alone and in adjacent runs of up to ``MAX_RUN``, as verbatim text, without the sentence itself."""
    cuts = [0]
    for match in _CLAUSE_BREAK.finditer(sentence):
        cuts += [match.start(), match.end()]
    cuts.append(len(sentence))
    pieces = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts), 2)]
    pieces = [(a, b) for a, b in pieces if _WORD.search(sentence[a:b])]
    runs: list[str] = []
    for i in range(len(pieces)):
        for j in range(i, min(i + MAX_RUN, len(pieces))):
            if i == 0 and j == len(pieces) - 1:
                continue  # the whole sentence is its own candidate
            text = _EDGE.sub("", sentence[pieces[i][0] : pieces[j][1]])
            if text and text not in runs:
                runs.append(text)
    return runs


def _similarities(question: str, texts: Sequence[str], embed: Embed | None) -> np.ndarray:
    if embed is None:
        asked = content_words(question)
        return np.array([len(asked & content_words(t)) / (len(asked) or 1) for t in texts], dtype=np.float32)
    vectors = np.asarray(embed([question, *texts]), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    vectors = vectors / norms[:, None]
    return np.asarray(vectors[1:] @ vectors[0], dtype=np.float32)


def candidate_spans(question: str, sentence: str, embed: Embed | None = None) -> tuple[list[str], np.ndarray]:
    """The candidate answers within ``sentence`` (the sentence itself first, then its clause runs) and their
    feature matrix, one row each."""
    spans = [sentence, *clause_runs(sentence)]
    similarity = _similarities(question, spans, embed)
    rows = [
        _features(question, span, sentence, float(sim), float(similarity[0]))
        for span, sim in zip(spans, similarity, strict=True)
    ]
    return spans, np.asarray(rows, dtype=np.float32)


def _share(words: Sequence[str], pool: set[str]) -> float:
    return sum(w in pool for w in words) / len(words) if words else 0.0


BASE_FEATURES = (
    "similarity",
    "similarity_gain",
    "whole_sentence",
    "log_words",
    "share_of_sentence",
    "repeats_question",
    "covers_question",
    "log_new_words",
    "has_number",
    "has_year",
    "capitalised",
    "starts_with_preposition",
)
TYPED = ("has_number", "has_year", "capitalised", "log_words", "whole_sentence", "repeats_question")
FEATURES = BASE_FEATURES + tuple(f"{t}*{f}" for t in WH_TYPES for f in TYPED)
_PREPOSITIONS = frozenset({"in", "on", "at", "by", "during", "from", "after", "before", "since", "near"})


def _features(question: str, span: str, sentence: str, similarity: float, sentence_similarity: float) -> list[float]:
    words = _WORD.findall(span.lower())
    asked = content_words(question)
    asked_all = set(_WORD.findall(question.lower()))
    original = _WORD.findall(span)
    base = {
        "similarity": similarity,
        "similarity_gain": similarity - sentence_similarity,
        "whole_sentence": float(span == sentence),
        "log_words": math.log1p(len(words)),
        "share_of_sentence": len(words) / max(len(_WORD.findall(sentence)), 1),
        "repeats_question": _share(words, asked_all),
        "covers_question": len(asked & set(words)) / (len(asked) or 1),
        "log_new_words": math.log1p(len(content_words(span) - asked_all)),
        "has_number": float(any(w.isdigit() and w not in asked_all for w in words)),
        "has_year": float(bool(_YEAR.search(span))),
        "capitalised": sum(w[:1].isupper() for w in original[1:]) / max(len(original) - 1, 1),
        "starts_with_preposition": float(bool(words) and words[0] in _PREPOSITIONS),
    }
    kind = question_type(question)
    typed = [base[f] if t == kind else 0.0 for t in WH_TYPES for f in TYPED]
    return [base[name] for name in BASE_FEATURES] + typed


@dataclass
class SpanRanker:
    """A linear scorer over :data:`FEATURES`: standardisation, weights and a bias, stored as JSON."""

    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float = 0.0

    def score(self, features: np.ndarray) -> np.ndarray:
        standard = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(standard @ np.asarray(self.weights) + self.bias, dtype=np.float64)

    def choose(self, question: str, sentence: str, embed: Embed | None = None) -> str:
        """The best-scoring span of ``sentence`` as the answer to ``question`` (the sentence when it wins)."""
        spans, features = candidate_spans(question, sentence, embed)
        return spans[int(np.argmax(self.score(features)))]

    def to_state(self) -> dict[str, Any]:
        return {
            "format": RANKER_FORMAT,
            "features": list(FEATURES),
            "mean": self.mean,
            "scale": self.scale,
            "weights": self.weights,
            "bias": self.bias,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SpanRanker:
        if state.get("format") != RANKER_FORMAT or list(state.get("features", [])) != list(FEATURES):
            raise InvalidInputError(
                "This program version's answer-span ranker was fitted on other features.",
                hint="Re-run `flywheel optimize rag` to fit it again with this Flywheel version.",
            )
        return cls(
            [float(v) for v in state["mean"]],
            [float(v) for v in state["scale"]],
            [float(v) for v in state["weights"]],
            float(state.get("bias", 0.0)),
        )
