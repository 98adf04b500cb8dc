"""Training data for ``flywheel optimize classifier``: gold rows, teacher-labelled rows, feedback corrections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.cli.common import console, progress_bar, settings


def classifier_training_set(
    train: Path | None,
    unlabelled: Path | None,
    from_feedback: bool,
    *,
    text_column: str,
    limit: int | None,
    assistant: Any,
) -> Any:
    """One classifier dataset from ``--train`` (gold), ``--unlabelled`` (labelled by ``[teacher_lm]``, else
    the task LM) and ``--from-feedback`` (corrections and thumbs-up on served classifications).

    Each row carries ``label_source`` so the distilled head can prefer feedback > gold > teacher labels.
    """
    from flywheel.errors import InvalidInputError
    from flywheel.evaluate.datasets import dataset_from_rows, read_rows

    if train is None and unlabelled is None and not from_feedback:
        raise InvalidInputError(
            "No training data.", hint="Pass --train FILE, --unlabelled FILE and/or --from-feedback."
        )
    rows: list[dict[str, Any]] = []
    if train is not None:
        gold = read_rows(train)[:limit] if limit else read_rows(train)
        rows += [{**row, "label_source": "gold"} for row in gold]
    program = assistant.program("classifier")
    if unlabelled is not None:
        rows += _teacher_rows(program, unlabelled, text_column=text_column, limit=limit)
    if from_feedback:
        from flywheel.optimize.classifier_feedback import classifier_feedback_rows
        from flywheel.stores.feedback import FeedbackStore

        extra, counts = classifier_feedback_rows(
            FeedbackStore(settings().catalog_url).list_feedback(program="classifier"), program.labels
        )
        console.print(
            f"Feedback: {len(extra)} training rows ({counts['corrections']} corrections, "
            f"{counts['thumbs_up']} thumbs-up; {counts['skipped_down_without_correction']} thumbs-down "
            f"without a correction and {counts['skipped_unparseable']} unreadable corrections skipped)",
            highlight=False,
        )
        rows += [{text_column: r["text"], **{k: v for k, v in r.items() if k != "text"}} for r in extra]
    if not rows:
        raise InvalidInputError(
            "The training sources hold no rows.",
            hint="Check --train/--unlabelled, or collect feedback on classifications first.",
        )
    name = " + ".join(p.name for p in (train, unlabelled) if p is not None) + (" + feedback" if from_feedback else "")
    return dataset_from_rows(rows, "classifier", name=name.strip(" +") or "feedback", text_column=text_column)


def _teacher_rows(program: Any, pool_path: Path, *, text_column: str, limit: int | None) -> list[dict[str, Any]]:
    from flywheel.evaluate.workflow import load_examples
    from flywheel.lm.factory import build_lm
    from flywheel.optimize.pseudo_label import label_pool
    from flywheel.programs.classify import FeedbackClassifier

    s = settings()
    pool = load_examples(pool_path, "classifier", text_column=text_column, as_user=None, limit=limit)
    teacher_lm = build_lm(s.teacher_lm) if s.teacher_lm else None
    # The teacher runs the LM program (never a head: a head cannot teach itself).
    teacher_program = FeedbackClassifier(program.labels)
    with progress_bar() as update:
        update("teacher labelling the pool", 0, len(pool))
        labelled, dropped = label_pool(teacher_program, pool, teacher_lm=teacher_lm, threads=s.optimize.threads)
        update("teacher labelling the pool", len(pool), len(pool))
    who = s.teacher_lm.model if s.teacher_lm else f"{s.lm.model} (no teacher_lm configured: the task LM)"
    console.print(f"Teacher {who} labelled {len(labelled)} rows ({dropped} failed and were dropped).", highlight=False)
    return [
        {text_column: ex.text, "sentiment": ex.sentiment, "reason": ex.get("reason") or "", "label_source": "teacher"}
        for ex in labelled.examples
    ]
