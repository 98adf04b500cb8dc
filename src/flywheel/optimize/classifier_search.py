"""``flywheel optimize classifier`` without an optimizer flag: a candidate search on a validation split.

The validation split is carved out of the *training* rows (stratified, ``val_fraction``); the
``--dev`` split stays untouched for the gate. Candidates:

- **distilled head** — :mod:`flywheel.optimize.distill`, trained on the rest of the training rows;
  scored on every validation row (no LM call);
- **LM programs** — zero-shot, and class-balanced labelled k-shot demos (``per_class`` rows of each
  sentiment: the label prior of real feedback is far from uniform, so a random sample of demos
  would be mostly negative); scored on the first ``lm_rows`` validation rows (a class-stratified
  sample), one LM call per row;
- **cascade** — the head plus the better LM program: rows whose head confidence is below a
  threshold go to the LM; the threshold maximises macro-F1 on the LM-scored rows with at most
  ``lm_share`` of the rows sent to the LM (it reuses the LM answers already computed: no extra call).

All candidates are compared on the same LM-scored rows (the head also on all validation rows);
the winner is rebuilt on **all** training rows and returned as the candidate the gate judges.

Budget: ``len(lm_candidates) × lm_rows`` LM calls (120 with the defaults), capped by
``--max-lm-calls``; the head costs one embedding pass over the training rows (~10 s per 1,000 rows
on 2 cores).
"""

from __future__ import annotations

import contextvars
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dspy

from flywheel.errors import InvalidInputError
from flywheel.evaluate.metrics import score_labels
from flywheel.optimize.compile import CompileResult, count_demos
from flywheel.optimize.distill import LabelledText, distill, labelled_texts, stratified_split
from flywheel.programs.classify import FeedbackClassifier
from flywheel.programs.classify_head import shared_embedder

Progress = Callable[[str, int, int | None], None]


@dataclass
class SearchOutcome:
    program: Any
    winner: str
    params: dict[str, Any]
    table: list[dict[str, Any]] = field(default_factory=list)
    lm_calls: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def balanced_demos(
    rows: Sequence[LabelledText], sentiments: Sequence[str], per_class: int, seed: int = 0
) -> list[dspy.Example]:
    """``per_class`` labelled rows of every sentiment (short texts first among a shuffled sample)."""
    rng = random.Random(seed)
    by_class: dict[str, list[LabelledText]] = defaultdict(list)
    for row in rows:
        by_class[row.sentiment].append(row)
    demos = []
    for sentiment in sentiments:
        members = list(by_class.get(sentiment, []))
        rng.shuffle(members)
        pool = sorted(members[: per_class * 4], key=lambda r: len(r.text))[:per_class]
        for row in pool:
            fields = {"text": row.text, "sentiment": row.sentiment}
            if row.reason:
                fields["reason"] = row.reason
            demos.append(dspy.Example(**fields).with_inputs("text"))
    rng.shuffle(demos)
    return demos


def objective_value(objective: str, gold: Sequence[LabelledText], predicted: Sequence[dict[str, Any]]) -> float:
    """The objective on paired rows: (reason_)accuracy / (reason_)macro_f1 with the project's one scorer."""
    field_name = "reason" if objective.startswith("reason_") else "sentiment"
    pairs = [
        (getattr(g, field_name), p.get(field_name))
        for g, p in zip(gold, predicted, strict=True)
        if getattr(g, field_name)
    ]
    if not pairs:
        return 0.0
    scores = score_labels([g for g, _ in pairs], [p for _, p in pairs])
    return scores.accuracy if objective.endswith("accuracy") else scores.macro_f1


def choose_threshold(
    confidences: Sequence[float],
    head: Sequence[dict[str, Any]],
    lm: Sequence[dict[str, Any]],
    gold: Sequence[LabelledText],
    *,
    max_share: float,
    objective: str = "macro_f1",
) -> tuple[float, float, float]:
    """(threshold, objective, share of rows sent to the LM): the best cascade within the LM budget.

    Rows with confidence below the threshold take the LM's answer. Ties go to the lower threshold
    (fewer LM calls); 0 means the head answers everything.
    """
    candidates = sorted({0.0, *(float(c) for c in confidences)})
    best = (0.0, objective_value(objective, gold, head), 0.0)
    for threshold in candidates[1:]:
        routed = [c < threshold for c in confidences]
        share = sum(routed) / len(routed) if routed else 0.0
        if share > max_share + 1e-9:
            break
        mixed = [lm_i if r else h for r, h, lm_i in zip(routed, head, lm, strict=True)]
        value = objective_value(objective, gold, mixed)
        if value > best[1] + 1e-9:
            best = (threshold, value, share)
    return best


def _lm_predictions(program: Any, texts: Sequence[str], threads: int) -> list[dict[str, Any]]:
    def one(text: str) -> dict[str, Any]:
        try:
            out = program.ask_lm(text)
            return {"sentiment": out.sentiment, "reason": out.reason}
        except Exception:  # a failed row counts as wrong
            return {"sentiment": None, "reason": None}

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(lambda t: contextvars.copy_context().run(one, t), texts))


def search(
    student: Any,
    rows: Sequence[LabelledText],
    *,
    embedder: Any,
    objective: str = "macro_f1",
    val_fraction: float = 0.2,
    lm_rows: int = 60,
    lm_share: float = 0.2,
    per_class: int = 2,
    max_lm_calls: int | None = None,
    threads: int = 2,
    seed: int = 0,
    progress: Progress | None = None,
) -> SearchOutcome:
    """Score the candidates on a validation split of ``rows`` and rebuild the best on all of them."""
    started = time.perf_counter()
    labels = student.labels
    gold_rows = [r for r in rows if r.source == "gold"] or list(rows)
    fit_idx, val_idx = stratified_split([r.sentiment for r in rows], val_fraction, seed)
    fit_rows, val_rows = [rows[i] for i in fit_idx], [rows[i] for i in val_idx]
    val_rows = [r for r in val_rows if r.source == "gold"] or val_rows  # score on trusted labels
    lm_candidates = ["zero-shot", f"balanced {per_class}-shot"]
    if max_lm_calls is not None:
        lm_rows = min(lm_rows, max_lm_calls // len(lm_candidates))
    # LM-scored rows: a class-stratified sample of the validation rows.
    sample_idx, _ = (
        stratified_split([r.sentiment for r in val_rows], 1 - min(1.0, lm_rows / max(1, len(val_rows))), seed)
        if 0 < lm_rows < len(val_rows)
        else (list(range(len(val_rows))), [])
    )
    lm_sample = [val_rows[i] for i in sample_idx] if lm_rows > 0 else []
    table: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        head_program = distill(student, fit_rows, embedder=embedder, seed=seed).program
    except InvalidInputError as exc:  # too few rows or classes to train a head
        head_program = None
        notes.append(f"no head candidate: {exc.message}")
    head_row: dict[str, Any] = {"candidate": "distilled head", "validation_rows": len(val_rows), "lm_share": 0.0}
    if head_program is not None:
        head_row["validation"] = objective_value(
            objective, val_rows, head_program.head_confidences([r.text for r in val_rows])
        )
        table.append(head_row)
    lm_calls = 0
    lm_answers: dict[str, list[dict[str, Any]]] = {}
    demos = balanced_demos([r for r in fit_rows if r.source == "gold"] or fit_rows, labels.sentiments, per_class, seed)
    if lm_sample:
        texts = [r.text for r in lm_sample]
        for name in lm_candidates:
            program = FeedbackClassifier(labels)
            if name != "zero-shot":
                program.classify.demos = list(demos)
            if progress:
                progress(f"scoring LM candidate: {name}", 0, len(texts))
            lm_answers[name] = _lm_predictions(program, texts, threads)
            lm_calls += len(texts)
            if progress:
                progress(f"scoring LM candidate: {name}", len(texts), len(texts))
            table.append(
                {
                    "candidate": f"LM {name}",
                    "validation": None,
                    "validation_rows": len(texts),
                    "lm_rows_score": objective_value(objective, lm_sample, lm_answers[name]),
                    "lm_share": 1.0,
                }
            )
        best_lm = max(lm_candidates, key=lambda n: objective_value(objective, lm_sample, lm_answers[n]))
        if head_program is not None:
            head_sample = head_program.head_confidences(texts)
            head_row["lm_rows_score"] = objective_value(objective, lm_sample, head_sample)
            threshold, value, share = choose_threshold(
                [h["confidence"] for h in head_sample],
                head_sample,
                lm_answers[best_lm],
                lm_sample,
                max_share=lm_share,
                objective=objective,
            )
            table.append(
                {
                    "candidate": f"cascade (head + LM {best_lm}, p<{threshold:.3f})",
                    "validation": None,
                    "validation_rows": len(texts),
                    "lm_rows_score": value,
                    "lm_share": share,
                    "threshold": threshold,
                    "lm_program": best_lm,
                }
            )
        # Highest score on the LM-scored rows; ties go to the earlier (cheaper) candidate: head, LM, cascade.
        winner_row = max(table, key=lambda row: row.get("lm_rows_score") or 0.0)
    elif head_program is not None:
        winner_row = head_row
        notes.append("no LM budget (classify.search_lm_rows = 0 or --max-lm-calls 0): head candidates only")
    else:
        raise InvalidInputError(
            "No classifier candidate could be scored: too few labelled rows for a head and no LM budget.",
            hint="Give more labelled rows (--train), or raise --max-lm-calls / classify.search_lm_rows.",
        )
    winner = winner_row["candidate"]
    # Rebuild the winner on all training rows.
    if winner == "distilled head":
        program = distill(student, rows, embedder=embedder, seed=seed).program
    elif winner.startswith("cascade"):
        program = distill(student, rows, embedder=embedder, seed=seed).program
        program.lm_below = float(winner_row["threshold"])
        if winner_row["lm_program"] != "zero-shot":
            program.classify.demos = balanced_demos(gold_rows, labels.sentiments, per_class, seed)
    else:
        program = FeedbackClassifier(labels)
        if winner != "LM zero-shot":
            program.classify.demos = balanced_demos(gold_rows, labels.sentiments, per_class, seed)
    params = {
        "optimizer": "auto",
        "winner": winner,
        "objective": objective,
        "validation_rows": len(val_rows),
        "lm_rows": len(lm_sample),
        "lm_share_budget": lm_share,
        "search_lm_calls": lm_calls,
        "lm_below": getattr(program, "lm_below", 0.0),
        "demos": len(program.classify.demos),
        "candidates": "; ".join(f"{r['candidate']}: {r.get('lm_rows_score', r['validation'])}" for r in table),
    }
    return SearchOutcome(program, winner, params, table, lm_calls, time.perf_counter() - started, notes)


CLASSIFIER_OPTIMIZERS = ("auto", "distill")


def compile_classifier(
    student: Any,
    examples: Sequence[dspy.Example],
    *,
    optimizer: str,
    objective: str,
    options: dict[str, Any] | None = None,
    max_lm_calls: int | None = None,
    threads: int = 2,
    seed: int = 0,
    embedder: Any = None,
    progress: Progress | None = None,
) -> Any:
    """``distill`` or ``auto`` for the classifier, as a :class:`~flywheel.optimize.compile.CompileResult`.

    ``options``: ``lm_rows`` (LM-scored validation rows per LM candidate), ``lm_share`` (the cascade's
    LM budget), ``per_class`` (balanced demos per sentiment).
    """
    options = dict(options or {})
    embedder = embedder or shared_embedder()
    rows = labelled_texts(examples)
    if optimizer == "distill":
        outcome = distill(student, rows, embedder=embedder, seed=seed)
        return CompileResult(outcome.program, "distill", outcome.params, 0, outcome.wall_s, 0, notes=outcome.notes)
    found = search(
        student,
        rows,
        embedder=embedder,
        objective=objective
        if objective in {"accuracy", "macro_f1", "reason_accuracy", "reason_macro_f1"}
        else "macro_f1",
        lm_rows=int(options.get("lm_rows", 60)),
        lm_share=float(options.get("lm_share", 0.2)),
        per_class=int(options.get("per_class", 2)),
        max_lm_calls=max_lm_calls,
        threads=threads,
        seed=seed,
        progress=progress,
    )
    notes = [
        *found.notes,
        "candidates on the validation split carved from --train: "
        + "; ".join(
            f"{r['candidate']} {r.get('lm_rows_score') if r.get('lm_rows_score') is not None else r['validation']:.3f}"
            for r in found.table
        ),
    ]
    return CompileResult(
        found.program,
        f"auto:{found.winner}",
        found.params,
        found.lm_calls,
        found.wall_s,
        count_demos(found.program),
        notes=notes,
    )
