"""``flywheel eval`` and ``flywheel optimize``: measure a program, and improve it behind the gate."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from flywheel.cli.common import console, knowledge_base, metrics_table, progress_bar, settings
from flywheel.programs.kinds import ProgramKind


def _runtime(program: str, *, version: str | None = None) -> tuple[Any, Any, Any]:
    """(assistant, registry, judge LM) with DSPy configured."""
    from flywheel.assistant import Assistant, NoKnowledge
    from flywheel.lm import configure_dspy
    from flywheel.lm.factory import build_lm
    from flywheel.registry.programs import ProgramRegistry

    s = settings()
    configure_dspy(s)
    registry = ProgramRegistry(s)
    # The classifier reads no documents: spare it opening the index.
    knowledge = NoKnowledge() if ProgramKind.of(program) == ProgramKind.CLASSIFIER else None
    assistant = Assistant(s, knowledge=knowledge, registry=registry, alias=version or "champion")
    judge_lm = build_lm(s.judge_lm) if s.judge_lm is not None else None
    return assistant, registry, judge_lm


def load_examples(path: Path, program: str, *, text_column: str, as_user: str | None, limit: int | None) -> Any:
    """The dataset at ``path`` for ``program``, resolved against this installation's catalog."""
    from flywheel.evaluate.workflow import load_examples as load

    return load(path, program, text_column=text_column, as_user=as_user, limit=limit, knowledge=knowledge_base)


def examples_from_rows(
    rows: list[dict[str, Any]], program: str, *, name: str, text_column: str, as_user: str | None, limit: int | None
) -> Any:
    from flywheel.evaluate.workflow import examples_from_rows as from_rows

    return from_rows(
        rows, program, name=name, text_column=text_column, as_user=as_user, limit=limit, knowledge=knowledge_base
    )


def evaluate(
    program: str = typer.Argument(..., help="Program name: rag, agent, classifier, or a custom one."),
    dataset: Path = typer.Argument(..., help="JSONL/CSV dataset (question[, answer, document, user] or text)."),
    metric: list[str] = typer.Option([], "--metric", "-m", help="Metric(s) to compute (default: the kind's set)."),
    version: str | None = typer.Option(None, "--version", help="Registered version or alias (default: champion)."),
    baseline: str | None = typer.Option(None, "--baseline", help="Also evaluate this version/alias: before/after."),
    as_user: str | None = typer.Option(None, "--as", help="Ask as this user where a row has no user."),
    text_column: str = typer.Option("text", "--text-column", help="Classifier datasets: the text column."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N rows."),
    judge: bool = typer.Option(False, "--judge", help="Also run the LLM judges (faithfulness, relevance, safety)."),
    report: Path | None = typer.Option(None, "--report", help="Report directory (default under FLYWHEEL_HOME)."),
    trace: bool = typer.Option(True, "--trace/--no-trace", help="Log a trace per example to MLflow."),
) -> None:
    """Run a program over a dataset in parallel; print, save and log (MLflow) the scores."""
    from flywheel.evaluate.catalog import DEFAULT_METRICS, resolve_metrics
    from flywheel.evaluate.report import write_report
    from flywheel.evaluate.workflow import EvaluationRequest, evaluate_versions
    from flywheel.registry.tracking import dspy_autologging, log_run_results

    s = settings()
    kind = ProgramKind.of(program)
    assistant, _registry, judge_lm = _runtime(program, version=version)
    data = load_examples(dataset, program, text_column=text_column, as_user=as_user, limit=limit)
    names = metric or list(DEFAULT_METRICS[kind])
    if judge and kind == ProgramKind.QA:
        names += ["faithfulness", "relevance", "safety"]
    metrics = resolve_metrics(
        names, kind, composites=s.optimize.composites, judge_lm=judge_lm, k=s.programs.retrieval_k
    )
    assistant.program(program)  # loads the registered version, for the label
    number = assistant.loaded_versions.get(program)
    label = f"{program}@v{number}" if number else f"{program} (unregistered)"
    request = EvaluationRequest(program, data, metrics, threads=s.optimize.threads, label=label, baseline=baseline)
    with progress_bar() as update:
        outcome = evaluate_versions(
            assistant,
            request,
            progress=update,
            baseline_assistant=_runtime(program, version=baseline)[0] if baseline is not None else None,
            tracing=(lambda: dspy_autologging(s)) if trace else nullcontext,
        )
    result, before = outcome.result, outcome.baseline
    directory = report or s.home / "reports" / f"eval-{program}-{time.strftime('%Y%m%d-%H%M%S')}"
    write_report(result, directory, metric=names[0] if names else None, baseline=before)
    run_id = log_run_results(
        s,
        run_name=f"eval-{program}",
        metrics=result.metrics,
        report_dir=directory,
        params={
            "program": program,
            "version": assistant.loaded_versions.get(program),
            "dataset": str(dataset),
            "examples": len(data),
            "lm_calls": result.lm_calls,
            "errors": result.errors,
            "lm": s.lm.model,
        },
    )
    columns = {f"{program}@{baseline}": before.metrics} if before is not None else {}
    console.print(metrics_table(f"{label} on {data.name} ({len(data)} examples)", {**columns, label: result.metrics}))
    console.print(
        f"{result.errors} errors · {result.lm_calls} LM calls · {result.wall_s:.1f} s · "
        f"report: {directory} · MLflow run {run_id}",
        highlight=False,
    )


def optimize(
    program: str = typer.Argument(..., help="Program to improve: rag, classifier, or a custom chatbot."),
    train: Path | None = typer.Option(None, "--train", help="Training dataset (JSONL/CSV)."),
    unlabelled: Path | None = typer.Option(
        None, "--unlabelled", help="Classifier: texts for the teacher LM to label as training data."
    ),
    dev: Path | None = typer.Option(None, "--dev", help="Held-out dataset for the gate (default: split of --train)."),
    from_feedback: bool = typer.Option(False, "--from-feedback", help="Train on production feedback as well."),
    optimizer: str | None = typer.Option(
        None,
        "--optimizer",
        "-o",
        help="auto (default for rag: refusal calibration + labelled demos + a design "
        "search on a validation split of --train), bootstrap, random-search, mipro, knn or gepa; for the "
        "classifier also distill (a scikit-learn head over sentence vectors) and auto (default for the "
        "classifier: a candidate search over head, LM programs and cascade on a validation split of --train).",
    ),
    metric: str | None = typer.Option(None, "--metric", "-m", help="Objective (default rag_quality / macro_f1)."),
    max_lm_calls: int | None = typer.Option(None, "--max-lm-calls", help="Budget: LM calls while compiling."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="Budget: minutes while compiling."),
    train_limit: int | None = typer.Option(None, "--train-limit", help="Use the first N training rows."),
    dev_limit: int | None = typer.Option(None, "--dev-limit", help="Use the first N held-out rows."),
    max_demos: int = typer.Option(4, "--max-demos", help="Few-shot demos per predictor."),
    as_user: str | None = typer.Option(None, "--as", help="Ask as this user where a row has no user."),
    text_column: str = typer.Option("text", "--text-column", help="Classifier datasets: the text column."),
    margin: float | None = typer.Option(None, "--margin", help="Gate: required improvement (default from config)."),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="Promote if the gate passes."),
) -> None:
    """Compile a candidate with a DSPy optimizer, evaluate it next to the champion, register it, gate it."""
    import mlflow

    from flywheel.evaluate.catalog import DEFAULT_OBJECTIVE
    from flywheel.lm.factory import build_lm
    from flywheel.optimize.compile import Budget
    from flywheel.optimize.workflow import OptimizeRequest, optimize_program
    from flywheel.registry.tracking import log_run_results, use_tracking

    s = settings()
    kind = ProgramKind.of(program)
    optimizer = optimizer or ("auto" if kind == ProgramKind.CLASSIFIER or program == "rag" else "bootstrap")
    if kind == ProgramKind.CLASSIFIER:
        from flywheel.cli.classifier_training import classifier_training_set

        train_set = classifier_training_set(
            train, unlabelled, from_feedback, text_column=text_column, limit=train_limit, assistant=_runtime(program)[0]
        )
    elif unlabelled is not None:
        train_set = _teacher_labelled(program, unlabelled, text_column=text_column, limit=train_limit)
    else:
        train_set = _training_set(
            program, train, from_feedback, text_column=text_column, as_user=as_user, limit=train_limit
        )
    if dev is not None:
        dev_set = load_examples(dev, program, text_column=text_column, as_user=as_user, limit=dev_limit)
    else:
        train_set, dev_set = train_set.split(s.optimize.dev_fraction, seed=s.optimize.seed)
        dev_set = dev_set.head(dev_limit)
    assistant, registry, judge_lm = _runtime(program)
    request = OptimizeRequest(
        program=program,
        optimizer=optimizer,
        objective=metric or DEFAULT_OBJECTIVE[kind],
        train=train_set,
        dev=dev_set,
        budget=Budget(max_lm_calls or s.optimize.max_lm_calls, max_minutes or s.optimize.max_minutes),
        threads=s.optimize.threads,
        seed=s.optimize.seed,
        max_demos=max_demos,
        margin=s.optimize.margin if margin is None else margin,
        guards=dict(s.optimize.guards),
        composites=dict(s.optimize.composites),
        promote=promote,
        judge_lm=judge_lm,
        teacher_lm=build_lm(s.teacher_lm) if s.teacher_lm else None,
        reflection_lm=build_lm(s.reflection_lm) if s.reflection_lm else None,
        retrieval_k=s.programs.retrieval_k,
        options={"lm_rows": s.classify.search_lm_rows, "lm_share": s.classify.cascade_lm_share},
    )
    report_dir = s.home / "reports" / f"optimize-{program}-{time.strftime('%Y%m%d-%H%M%S')}"
    use_tracking(s)
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"optimize-{program}-{optimizer}"), progress_bar() as update:
        outcome = optimize_program(assistant, registry, request, report_dir=report_dir, progress=update)
        summary = outcome.summary()
        log_run_results(
            s,
            run_name="",
            report_dir=report_dir,
            params={
                **outcome.compiled.params,
                "program": program,
                "objective": request.objective,
                "promoted": outcome.decision.promote,
                "version": summary["version"],
            },
            metrics={
                **{f"candidate.{k}": v for k, v in outcome.candidate.metrics.items()},
                **{f"champion.{k}": v for k, v in outcome.baseline.metrics.items()},
                "compile_lm_calls": outcome.compiled.lm_calls,
            },
        )
    console.print(
        metrics_table(
            f"{program}: held-out {dev_set.name} ({len(dev_set)} examples)",
            {"champion": outcome.baseline.metrics, "candidate": outcome.candidate.metrics},
        )
    )
    promoted = outcome.decision.promote and promote
    verdict = "[green]promoted to champion[/]" if promoted else "[yellow]kept as candidate[/]"
    console.print(f"Version {summary['version']} {verdict}: {'; '.join(outcome.decision.reasons)}")
    for note in outcome.compiled.notes:
        console.print(f"[dim]{note}[/]")
    console.print(
        f"Compile: {outcome.compiled.lm_calls} LM calls, {outcome.compiled.wall_s:.1f} s, "
        f"{outcome.compiled.demos} demos · total {time.perf_counter() - started:.1f} s · "
        f"report: {report_dir}",
        highlight=False,
    )


def _training_set(
    program: str, train: Path | None, from_feedback: bool, *, text_column: str, as_user: str | None, limit: int | None
) -> Any:
    from flywheel.errors import InvalidInputError
    from flywheel.evaluate.datasets import read_rows

    if train is None and not from_feedback:
        raise InvalidInputError("No training data.", hint="Pass --train FILE and/or --from-feedback.")
    rows: list[dict[str, Any]] = read_rows(train) if train is not None else []
    if from_feedback:
        if ProgramKind.of(program) == ProgramKind.CLASSIFIER:
            raise InvalidInputError(
                "Feedback is collected on chat answers, not on classifications.",
                hint="Use --train with labelled feedback texts for the classifier.",
            )
        from flywheel.optimize.feedback import feedback_rows
        from flywheel.stores.feedback import FeedbackStore

        extra, counts = feedback_rows(FeedbackStore(settings().catalog_url).list_feedback(program=program))
        console.print(
            f"Feedback: {len(extra)} training rows ({counts['corrections']} corrections, "
            f"{counts['thumbs_up']} thumbs-up; {counts['skipped_down_without_correction']} thumbs-down "
            "without a correction skipped)",
            highlight=False,
        )
        rows += extra
    return examples_from_rows(
        rows, program, name=train.name if train else "feedback", text_column=text_column, as_user=as_user, limit=limit
    )


def _teacher_labelled(program: str, pool_path: Path, *, text_column: str, limit: int | None) -> Any:
    """Label an unlabelled pool with the teacher LM (``[teacher_lm]``, else the task LM)."""
    from flywheel.errors import InvalidInputError
    from flywheel.lm.factory import build_lm
    from flywheel.optimize.pseudo_label import label_pool

    if ProgramKind.of(program) != ProgramKind.CLASSIFIER:
        raise InvalidInputError(
            "--unlabelled is for the classifier.",
            hint="For chatbots use --train (gold answers optional) or --from-feedback.",
        )
    s = settings()
    pool = load_examples(pool_path, program, text_column=text_column, as_user=None, limit=limit)
    assistant, _registry, _judge = _runtime(program)
    teacher = build_lm(s.teacher_lm) if s.teacher_lm else None
    with progress_bar() as update:
        update("teacher labelling the pool", 0, len(pool))
        labelled, dropped = label_pool(assistant.program(program), pool, teacher_lm=teacher, threads=s.optimize.threads)
        update("teacher labelling the pool", len(pool), len(pool))
    who = s.teacher_lm.model if s.teacher_lm else f"{s.lm.model} (no teacher_lm configured: the task LM)"
    console.print(f"Teacher {who} labelled {len(labelled)} rows ({dropped} failed and were dropped).", highlight=False)
    return labelled
