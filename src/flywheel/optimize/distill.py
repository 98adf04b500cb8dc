"""The ``distill`` optimizer: a scikit-learn head over sentence vectors, trained from labels.

Training rows come from three sources, deduplicated by text with the more trusted label winning:
**feedback** corrections (a person said what is right) > **gold** labelled rows (``--train``) >
**teacher** labels (``--unlabelled`` rows labelled by ``[teacher_lm]``, else the task LM). Each
row's text is embedded once by the configured embedder; the regularisation strength ``C`` is chosen
on a stratified validation share of the rows (macro-F1 of sentiment), then the head is refit on
every row. The result is the ordinary ``classifier`` program with a head (no LM call per row), so it
is registered, gated and served like any other version.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
import numpy as np

from flywheel.errors import InvalidInputError
from flywheel.evaluate.metrics import score_labels
from flywheel.programs.classify import FeedbackClassifier
from flywheel.programs.classify_head import fit_head, prepare_text

SOURCES = ("feedback", "gold", "teacher")  # most trusted first
C_GRID = (0.5, 1.0, 2.0, 4.0)
MIN_ROWS_FOR_SEARCH = 40


@dataclass
class LabelledText:
    text: str
    sentiment: str
    reason: str | None
    source: str = "gold"


@dataclass
class DistillOutcome:
    program: Any
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def labelled_texts(examples: Sequence[dspy.Example], source: str | None = None) -> list[LabelledText]:
    """Examples with a gold sentiment as training rows (``label_source`` on an example wins over ``source``)."""
    rows = []
    for ex in examples:
        sentiment = ex.get("sentiment")
        if not sentiment:
            continue
        reason = ex.get("reason") or None
        rows.append(
            LabelledText(
                str(ex.get("text")),
                str(sentiment),
                None if reason is None else str(reason),
                str(ex.get("label_source") or source or "gold"),
            )
        )
    return rows


def merge_sources(rows: Sequence[LabelledText]) -> list[LabelledText]:
    """One row per text; a feedback label beats a gold label, which beats a teacher's."""
    rank = {name: i for i, name in enumerate(SOURCES)}
    best: dict[str, LabelledText] = {}
    for row in rows:
        kept = best.get(row.text)
        if kept is None or rank.get(row.source, len(SOURCES)) < rank.get(kept.source, len(SOURCES)):
            best[row.text] = row
    return list(best.values())


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(fit, validation) row indices; every class with >= 2 rows is on both sides."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    rng = random.Random(seed)
    fit, val = [], []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_val = round(len(members) * fraction) if len(members) >= 2 else 0
        n_val = min(max(n_val, 1 if len(members) >= 2 else 0), len(members) - 1)
        val += members[:n_val]
        fit += members[n_val:]
    return sorted(fit), sorted(val)


def distill(
    student: Any,
    rows: Sequence[LabelledText],
    *,
    embedder: Any,
    seed: int = 0,
    val_fraction: float = 0.2,
    c_grid: Sequence[float] = C_GRID,
) -> DistillOutcome:
    """Train a head for ``student`` (a FeedbackClassifier) on ``rows``; returns a new program with it."""
    started = time.perf_counter()
    rows = merge_sources(rows)
    labels = student.labels
    rows = [r for r in rows if r.sentiment in labels.sentiments]
    if len(rows) < 2 or len({r.sentiment for r in rows}) < 2:
        raise InvalidInputError(
            f"Distillation needs labelled rows of at least two sentiments (got {len(rows)} usable rows).",
            hint="Pass --train with labelled rows (sentiment column), "
            "--unlabelled texts for the teacher, or collect corrections first.",
        )
    texts = [prepare_text(r.text) for r in rows]
    sentiments = [r.sentiment for r in rows]
    reasons = [r.reason if r.reason in labels.reasons else None for r in rows]
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    params: dict[str, Any] = {
        "optimizer": "distill",
        "embedder": embedder.name,
        "rows": len(rows),
        **{f"rows.{s}": n for s, n in Counter(r.source for r in rows).items()},
    }
    notes = []
    best_c = 1.0
    fit_idx, val_idx = stratified_split(sentiments, val_fraction, seed)
    if len(rows) >= MIN_ROWS_FOR_SEARCH and val_idx and len({sentiments[i] for i in fit_idx}) >= 2:
        scores = {}
        for c in c_grid:
            head = fit_head(
                vectors[fit_idx],
                [texts[i] for i in fit_idx],
                [sentiments[i] for i in fit_idx],
                [reasons[i] for i in fit_idx],
                embedder=embedder.name,
                c=c,
                negative="negative",
                seed=seed,
            )
            predicted = [p.sentiment for p in head.predict_vectors(vectors[val_idx], [texts[i] for i in val_idx])]
            scores[c] = score_labels([sentiments[i] for i in val_idx], predicted).macro_f1
        best_c = max(scores, key=lambda c: (round(scores[c], 3), -c))  # ties: the stronger regularisation
        params["c_search"] = {str(c): round(v, 4) for c, v in scores.items()}
        params["validation_rows"] = len(val_idx)
        notes.append(f"C={best_c} chosen on {len(val_idx)} validation rows (macro-F1 {scores[best_c]:.3f})")
    head = fit_head(
        vectors, texts, sentiments, reasons, embedder=embedder.name, c=best_c, negative="negative", seed=seed
    )
    params["C"] = best_c
    program = FeedbackClassifier(labels, head=head)
    return DistillOutcome(program, params, notes, time.perf_counter() - started)
