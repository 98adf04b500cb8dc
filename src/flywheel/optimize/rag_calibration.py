"""Calibrations of the RAG chatbot's decisions on labelled rows: when to refuse, and where P(yes) decides.

Both replace a raw decision of a small model with a threshold measured on data: the refusal on the
retriever's best passage relevance (no LM call), the yes/no answer on the LM's own P(yes) (one prompt
evaluation per row, no decoding). :mod:`flywheel.optimize.rag_search` then lets the validation split
decide whether a calibrated design beats the uncalibrated one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import dspy
import numpy as np

from flywheel.evaluate.metrics import gold_answers, normalize_answer
from flywheel.programs.choice import fit_threshold
from flywheel.programs.rag import RAGChatbot, is_yes_no_question

YES_NO = ("yes", "no")


@dataclass
class RefusalCalibration:
    """The chosen relevance threshold and how it separates answerable from unanswerable probes."""

    threshold: float
    answerable: int
    unanswerable: int
    answerable_kept: float
    refusal_precision: float
    refusal_recall: float


def _best_relevance(hits: Sequence[Any]) -> float:
    return max((h.relevance.get("vector", 0.0) for h in hits), default=0.0)


def gold_documents(kb: Any, example: dspy.Example, *, k: int = 4) -> tuple[str, ...]:
    """The row's gold documents; for a row without them (e.g. a correction from feedback), the
    documents of the passages, retrieved as the row's user, that contain its gold answer."""
    given = tuple(example.get("gold_doc_ids") or ())
    if given:
        return given
    golds = [normalize_answer(g) for g in gold_answers(example) if normalize_answer(g) not in YES_NO]
    if not golds:
        return ()
    hits = kb.search(example.principal, example.question, k=k)
    return tuple(dict.fromkeys(h.doc_id for h in hits if any(g in normalize_answer(h.text) for g in golds)))


def calibrate_refusal(
    kb: Any, examples: Sequence[dspy.Example], *, k: int, max_false_refusal: float = 0.05
) -> RefusalCalibration | None:
    """Threshold on the best passage's cosine similarity, from rows with gold documents (no LM call)."""
    from flywheel.knowledge.index import MetadataFilter

    answerable, unanswerable = [], []
    for example in examples:
        gold = gold_documents(kb, example, k=k)
        if not gold:
            continue
        principal, question = example.principal, example.question
        answerable.append(_best_relevance(kb.search(principal, question, k=k)))
        unanswerable.append(
            _best_relevance(kb.search(principal, question, k=k, metadata=MetadataFilter(exclude_documents=gold)))
        )
    if len(answerable) < 5:
        return None
    positives, negatives = np.array(answerable), np.array(unanswerable)
    # The largest threshold that refuses at most max_false_refusal of the answerable questions.
    quantile = float(np.quantile(positives, max_false_refusal, method="lower"))
    # Midway to the closest unanswerable probe below it: the same decisions here, a margin on new data.
    below = negatives[negatives < quantile]
    threshold = (float(below.max()) + quantile) / 2 if below.size else quantile
    refused_answerable = int((positives < threshold).sum())
    refused_unanswerable = int((negatives < threshold).sum())
    refused = refused_answerable + refused_unanswerable
    return RefusalCalibration(
        threshold=round(threshold, 4),
        answerable=len(positives),
        unanswerable=len(negatives),
        answerable_kept=1 - refused_answerable / len(positives),
        refusal_precision=refused_unanswerable / refused if refused else 0.0,
        refusal_recall=refused_unanswerable / len(negatives),
    )


@dataclass
class YesNoCalibration:
    """The fitted P(yes) threshold and how it decides the fit rows' yes/no questions."""

    threshold: float
    rows: int
    accuracy_before: float
    accuracy_after: float


def _yes_no_label(example: dspy.Example) -> bool | None:
    forms = {normalize_answer(g) for g in gold_answers(example)} & set(YES_NO)
    return forms == {"yes"} if len(forms) == 1 else None


def calibrate_yes_no(
    program: RAGChatbot, examples: Sequence[dspy.Example], *, min_rows: int = 8, max_seconds: float | None = None
) -> YesNoCalibration | None:
    """Fit ``yes_threshold`` on the labelled yes/no rows (one prompt evaluation each, no decoding), or
    None when there are too few rows or the LM cannot score continuations. With ``max_seconds``, no row
    starts after that time (with the embedded model on 2 cores a row is a ~1,000-token prompt, ~10 s)."""
    started = time.perf_counter()
    probe = program.deepcopy()
    probe.configure(replace(program.config, min_relevance=0.0))  # calibrate the decision, not the refusal
    probabilities, labels = [], []
    for example in examples:
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
        label = _yes_no_label(example) if is_yes_no_question(example.question) else None
        if label is None:
            continue
        p_yes = probe(question=example.question, principal=example.principal).get("yes_probability")
        if p_yes is None:
            return None  # an engine without continuation scores: nothing to calibrate
        probabilities.append(float(p_yes))
        labels.append(label)
    if len(labels) < min_rows:
        return None
    before = sum((p >= program.config.yes_threshold) == y for p, y in zip(probabilities, labels, strict=True))
    threshold, accuracy = fit_threshold(probabilities, labels, default=program.config.yes_threshold)
    return YesNoCalibration(
        threshold=round(threshold, 4), rows=len(labels), accuracy_before=before / len(labels), accuracy_after=accuracy
    )
