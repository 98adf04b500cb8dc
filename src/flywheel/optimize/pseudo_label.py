"""Optimization from unlabelled data: a teacher LM labels a pool, the labels train the student.

The teacher is any configured LM (``[teacher_lm]``: typically a larger model behind an
OpenAI-compatible endpoint); it runs the same program, so its labels respect the same label set.
Rows the teacher fails on are dropped. The gate still judges the student on *labelled* held-out
data, so a poor teacher cannot promote a worse program.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import dspy

from flywheel.evaluate.datasets import Dataset


def label_pool(
    program: dspy.Module,
    pool: Dataset,
    *,
    teacher_lm: Any = None,
    threads: int = 2,
    fields: Sequence[str] = ("sentiment", "reason"),
) -> tuple[Dataset, int]:
    """The pool with the teacher's labels as gold fields, and the number of rows dropped."""

    def label(example: dspy.Example) -> dspy.Example | None:
        with dspy.context(lm=teacher_lm) if teacher_lm is not None else nullcontext():
            try:
                prediction = program(**example.inputs())
            except Exception:
                return None
        values = {name: getattr(prediction, name, None) for name in fields}
        return example.copy(**values).with_inputs(*example.inputs().keys())

    with ThreadPoolExecutor(max_workers=max(1, threads)) as executor:
        futures = [executor.submit(contextvars.copy_context().run, label, ex) for ex in pool.examples]
        labelled = [f.result() for f in futures]
    kept = [ex for ex in labelled if ex is not None]
    return Dataset(f"{pool.name} (teacher-labelled)", pool.kind, kept, True, pool.columns), len(labelled) - len(kept)
