"""Fitting the RAG chatbot's answer-span ranker (:class:`flywheel.programs.spans.SpanRanker`) on labelled rows.

For every training row whose gold answer is not yes/no (and that value answers do not cover: a
question asking for a quantity or date whose quoted sentence holds a value phrase), the program
retrieves as the row's user, takes the sentence it would quote, and scores each candidate span of
that sentence by its token F1 against the gold answers; a ridge regression over the spans' features
learns the *expected* F1 of a span, so the ranker returns a clause only where a clause is likely to
score better than the whole sentence (it learned to prefer the sentence where the gold answers are
sentences). No LM call: retrieval and the embedder only. The fitted weights are plain floats, stored
with the program version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dspy
import numpy as np

from flywheel.evaluate.metrics import gold_answers, normalize_answer, token_f1
from flywheel.programs.quote import best_sentence
from flywheel.programs.rag import Passage, RAGChatbot, is_yes_no_question
from flywheel.programs.spans import SpanRanker, candidate_spans

MIN_ROWS = 20
# Ridge penalty on standardised features: chosen by article-grouped cross-validation on wiki_qa's training
# articles (1 to 100 within 0.01 F1 of each other; 10 best).
ALPHA = 10.0


@dataclass
class SpanRows:
    """Per question: the candidate spans' features and their F1 against the gold answers."""

    features: list[np.ndarray]
    scores: list[np.ndarray]


def _short_answer_golds(example: dspy.Example) -> list[str]:
    golds = gold_answers(example)
    if not golds or is_yes_no_question(example.question):
        return []
    return [g for g in golds if normalize_answer(g) not in ("yes", "no")]


def span_rows(program: RAGChatbot, examples: Sequence[dspy.Example]) -> SpanRows:
    """The candidate spans of the sentence ``program`` would quote for each short-answer row."""
    if program.retriever is None:
        raise ValueError("the program needs a retriever to fit its span ranker")
    rows = SpanRows([], [])
    for example in examples:
        golds = _short_answer_golds(example)
        if not golds:
            continue
        passages = program.retriever(example.question, example.principal, program.config.k)
        quoted = best_sentence(example.question, passages, Passage.body, program.embed)
        if quoted is None:
            continue
        if program.quoted_value(example.question, quoted[0]) is not None:
            continue  # the program answers it with the value phrase: no span is ever chosen for it
        spans, features = candidate_spans(example.question, quoted[0], program.embed)
        rows.features.append(features)
        rows.scores.append(np.array([token_f1({"answer": golds}, {"answer": s}) or 0.0 for s in spans]))
    return rows


def fit_span_ranker(rows: SpanRows, *, alpha: float = ALPHA) -> SpanRanker | None:
    """A ridge regression of each span's F1 on its standardised features; None below ``MIN_ROWS`` questions."""
    from sklearn.linear_model import Ridge  # lazy: only optimization needs scikit-learn

    if len(rows.features) < MIN_ROWS:
        return None
    features = np.vstack(rows.features).astype(np.float64)
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    model = Ridge(alpha=alpha).fit((features - mean) / scale, np.concatenate(rows.scores))
    return SpanRanker(mean.tolist(), scale.tolist(), model.coef_.tolist(), float(model.intercept_))


def quoted_f1(rows: SpanRows, ranker: SpanRanker | None) -> float:
    """Mean F1 of the quoted answer over ``rows``: the ranker's span, or the whole sentence without one."""
    if not rows.scores:
        return 0.0
    chosen = [
        scores[int(np.argmax(ranker.score(features)))] if ranker else scores[0]
        for features, scores in zip(rows.features, rows.scores, strict=True)
    ]
    return float(np.mean(chosen))
