"""One evaluation: a program (and optionally a baseline version) over a dataset, scored and reported.

Mirrors :mod:`flywheel.optimize.workflow`: the caller builds the assistants (with the registry) and
passes in how to trace, so this module stays free of MLflow and of the CLI. The DSPy autologging
that traces every example is switched on only for the runs and always off again afterwards, also
when a run fails.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.errors import NotFoundError
from flywheel.evaluate.datasets import Dataset, dataset_from_rows, read_rows
from flywheel.evaluate.runner import EvalResult, evaluate_program
from flywheel.knowledge.base import KnowledgeBase
from flywheel.programs.kinds import ProgramKind

Progress = Callable[[str, int, int | None], None]
Tracing = Callable[[], AbstractContextManager[Any]]


def examples_from_rows(
    rows: list[dict[str, Any]],
    program: str,
    *,
    name: str,
    text_column: str,
    as_user: str | None,
    limit: int | None,
    knowledge: Callable[[], KnowledgeBase] | None = None,
) -> Dataset:
    """Validated examples for the program's kind; question rows resolve users and documents in the catalog
    of ``knowledge()`` (only opened for question-answering programs)."""
    if ProgramKind.of(program) == ProgramKind.CLASSIFIER:
        return dataset_from_rows(rows, "classifier", name=name, text_column=text_column, limit=limit)
    if knowledge is None:
        raise ValueError("Question-answering examples need the knowledge base to resolve users and documents.")
    kb = knowledge()
    documents = kb.catalog.list_documents()

    def resolve(source: str) -> str | None:
        return next(
            (
                d.id
                for d in documents
                if source in {d.id, d.source} or d.source.endswith("/" + source) or source.endswith("/" + d.source)
            ),
            None,
        )

    return dataset_from_rows(
        rows, "qa", name=name, principal_for=kb.principal, resolve_document=resolve, default_user=as_user, limit=limit
    )


def load_examples(
    path: Path,
    program: str,
    *,
    text_column: str,
    as_user: str | None,
    limit: int | None,
    knowledge: Callable[[], KnowledgeBase] | None = None,
) -> Dataset:
    """:func:`examples_from_rows` over a JSONL/CSV file."""
    return examples_from_rows(
        read_rows(path),
        program,
        name=path.name,
        text_column=text_column,
        as_user=as_user,
        limit=limit,
        knowledge=knowledge,
    )


@dataclass
class EvaluationRequest:
    program: str
    data: Dataset
    metrics: dict[str, Any]
    threads: int
    label: str
    baseline: str | None = None  # the baseline version/alias, evaluated with ``baseline_assistant``


@dataclass
class EvaluationOutcome:
    result: EvalResult
    baseline: EvalResult | None


def evaluate_versions(
    assistant: Any,
    request: EvaluationRequest,
    *,
    baseline_assistant: Any = None,
    tracing: Tracing = nullcontext,
    progress: Progress | None = None,
) -> EvaluationOutcome:
    """Evaluate the assistant's program (and the baseline's, first) on the request's dataset, inside
    ``tracing()`` (e.g. DSPy autologging), which is left again however the runs end."""
    update = progress or (lambda _label, _done, _total: None)
    before = None
    with tracing():
        if request.baseline is not None:
            program = baseline_assistant.program(request.program)  # loads the registered state and its version
            if baseline_assistant.loaded_versions.get(request.program) is None:
                raise NotFoundError(
                    f"Program {request.program!r} has no registered version {request.baseline!r}.",
                    hint=f"See `flywheel programs show {request.program}`.",
                )
            before = evaluate_program(
                program,
                request.data,
                request.metrics,
                name=f"{request.program}@{request.baseline}",
                threads=request.threads,
                progress=lambda done, total: update(f"evaluating {request.baseline}", done, total),
            )
        result = evaluate_program(
            assistant.program(request.program),
            request.data,
            request.metrics,
            name=request.label,
            threads=request.threads,
            progress=lambda done, total: update("evaluating", done, total),
        )
    return EvaluationOutcome(result, before)
