"""``flywheel classify``: classify customer feedback in a file, locally or on Spark, with a report."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from flywheel.cli.common import console, settings

TRACE_SAMPLING = "MLFLOW_TRACE_SAMPLING_RATIO"


class Engine(StrEnum):
    local = "local"
    spark = "spark"


def classify(
    input_path: str = typer.Argument(
        ...,
        metavar="INPUT",
        help="A .csv, .parquet or .jsonl file of feedback (with Spark also a folder or an s3a://, hdfs:// … URI).",
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output Parquet file (a folder of part files with Spark)."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the feedback text."),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label set YAML (default: classify.labels, else the airline feedback taxonomy)."
    ),
    program: str = typer.Option(
        "classifier", "--program", "-p", help="`classifier`, or a custom program from programs.custom."
    ),
    program_version: str | None = typer.Option(
        None,
        "--program-version",
        help="A registered classifier version: a number or an alias like champion "
        "(default: zero-shot locally, champion on Spark).",
    ),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local (threads, checkpoints) or spark."),
    spark_master: str = typer.Option(
        "local[*]", "--spark-master", help="Spark master URL: local[2], spark://host:7077, yarn, k8s://…"
    ),
    spark_conf: list[str] = typer.Option([], "--spark-conf", help="Extra Spark setting KEY=VALUE (repeatable)."),
    partitions: int | None = typer.Option(None, "--partitions", min=1, help="Spark partitions (default: cores)."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, max=64, help="Parallel calls, local engine (default: classify.threads)."
    ),
    restart: bool = typer.Option(False, "--restart", help="Discard the checkpoint of an interrupted run."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    report: bool = typer.Option(
        False,
        "--report",
        help="Score the output against --label-column and write a "
        "report (JSON, Markdown, confusion-matrix PNG) next to it.",
    ),
    label_column: str = typer.Option("sentiment", "--label-column", help="Column with the true sentiment."),
    baseline: Path | None = typer.Option(
        None,
        "--baseline",
        help="An earlier output of the same rows (e.g. the zero-shot program's) to compare with in the report.",
    ),
    log_mlflow: bool = typer.Option(False, "--mlflow", help="Also log the report to MLflow (tracking store)."),
    trace_sample: float | None = typer.Option(
        None,
        "--trace-sample",
        min=0.0,
        max=1.0,
        help="Share of rows a registered model traces in MLflow "
        "(default 0, or $MLFLOW_TRACE_SAMPLING_RATIO): tracing a row costs more than a fast LM call.",
    ),
) -> None:
    """Classify every row's text: sentiment and, for negative feedback, a reason.

    Interrupted local runs resume where they stopped when rerun with the same arguments; rows that
    fail get an `error` and the run goes on.
    """
    import os

    from flywheel.batch.local import BatchSummary

    if trace_sample is not None:
        os.environ[TRACE_SAMPLING] = str(trace_sample)
    else:
        os.environ.setdefault(TRACE_SAMPLING, "0")
    if engine is Engine.spark:
        summary = _run_spark(
            input_path,
            out,
            text_column,
            labels,
            program,
            program_version,
            spark_master,
            spark_conf,
            partitions,
            overwrite,
            restart,
        )
    else:
        summary = _run_local(
            Path(input_path), Path(out), text_column, labels, program, program_version, threads, restart, overwrite
        )
    assert isinstance(summary, BatchSummary)
    console.print(_summary_table(summary, engine))
    if summary.failed:
        console.print(f"[yellow]{summary.failed} row(s) failed:[/] see the `error` column of {out}.")
    if report or baseline is not None or log_mlflow:
        _report(Path(out), label_column, baseline, text_column, log_mlflow, program_version)


def _run_local(
    input_path: Path,
    out: Path,
    text_column: str,
    labels: Path | None,
    program: str,
    program_version: str | None,
    threads: int | None,
    restart: bool,
    overwrite: bool,
) -> object:
    from flywheel.batch.io import read_table
    from flywheel.batch.local import checkpoint_dir, classify_frame, program_predictor_for

    config = settings()
    frame = read_table(input_path, text_column)
    with console.status("Loading the classifier…"):
        predict, program_id = program_predictor_for(config, program, labels, program_version)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("Classifying", total=len(frame), failed="")
        failures = 0

        def on_resume(done: int) -> None:
            if done:
                progress.console.print(f"Resuming: {done} of {len(frame)} rows are already classified.")
            progress.update(task, completed=done)

        def on_progress(_count: int, failed: bool) -> None:
            nonlocal failures
            failures += failed
            progress.update(task, advance=1, failed=f"[red]{failures} failed[/]" if failures else "")

        try:
            return classify_frame(
                frame,
                text_column,
                out,
                predict,
                program_id=program_id,
                threads=threads or config.classify.threads,
                checkpoint_rows=config.classify.checkpoint_rows,
                restart=restart,
                overwrite=overwrite,
                on_progress=on_progress,
                on_resume=on_resume,
            )
        except KeyboardInterrupt:
            console.print(f"Progress is saved in {checkpoint_dir(out)}: rerun the same command to resume.")
            raise


def _run_spark(
    input_path: str,
    out: str,
    text_column: str,
    labels: Path | None,
    program: str,
    program_version: str | None,
    master: str,
    conf: list[str],
    partitions: int | None,
    overwrite: bool,
    restart: bool = False,
) -> object:
    from flywheel.batch.spark import classify_spark, parse_conf, spark_session
    from flywheel.errors import ConfigError
    from flywheel.registry.programs import ProgramRegistry

    if labels is not None or program != "classifier":
        raise ConfigError(
            "--engine spark runs a registered classifier, whose label set is part of it.",
            hint="Drop --labels / --program, and pick the version with --program-version.",
        )
    if "://" not in out and Path(out).exists() and not overwrite:
        from flywheel.errors import InvalidInputError

        raise InvalidInputError(
            f"The output {out} already exists.", hint="Choose another --out, or pass --overwrite to replace it."
        )
    ref = program_version or "champion"
    registry = ProgramRegistry(settings())
    version = registry.require(
        "classifier",
        ref,
        hint="Register one first (e.g. `flywheel optimize classifier …`), "
        "or use --engine local for the zero-shot classifier.",
    )
    model_uri = registry.model_uri("classifier", version.version)
    with console.status(f"Starting Spark ({master})…"):
        spark = spark_session(master, parse_conf(conf))
    chunk_rows = settings().classify.spark_chunk_rows or None
    if chunk_rows is not None and "://" not in out:
        from flywheel.batch.spark_resume import partial_dir

        if (partial_dir(Path(out)) / "manifest.json").is_file() and not restart:
            console.print(f"Resuming from the checkpoint in {partial_dir(Path(out))}.")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            unit = "rows" if chunk_rows is not None and "://" not in out else "Spark tasks"
            task = progress.add_task(f"{unit} ({model_uri})", total=None)
            return classify_spark(
                spark,
                input_path,
                text_column,
                out,
                model_uri,
                partitions=partitions,
                overwrite=overwrite,
                chunk_rows=chunk_rows,
                restart=restart,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    finally:
        spark.stop()


def _summary_table(summary: object, engine: Engine) -> Table:
    from flywheel.batch.local import BatchSummary

    assert isinstance(summary, BatchSummary)
    table = Table(title=f"Classification summary ({engine.value})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("output", str(summary.output))
    table.add_row("rows", str(summary.rows))
    if summary.resumed:
        table.add_row("from the checkpoint", str(summary.resumed))
    table.add_row("classified now", str(summary.classified))
    table.add_row("failed", f"[red]{summary.failed}[/]" if summary.failed else "0")
    for label, count in sorted(summary.counts.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {label}", str(count))
    table.add_row("time", f"{summary.seconds:.1f} s ({summary.rows_per_s:.2f} rows/s)")
    return table


def _report(
    out: Path, label_column: str, baseline: Path | None, text_column: str, log_mlflow: bool, program_version: str | None
) -> None:
    from flywheel.batch.report import log_report, write_report

    files = write_report(out, label_column, baseline=baseline, text_column=text_column)
    _print_report(files, label_column)
    if log_mlflow:
        run_id = log_report(
            settings(),
            files,
            params={"output": out, "label_column": label_column, "program_version": program_version or "zero-shot"},
        )
        console.print(f"Logged to MLflow run {run_id}.")
    import pandas as pd

    columns = set(pd.read_parquet(out).columns) if label_column == "sentiment" else set()
    if {"reason", "predicted_reason"} <= columns:  # the reason taxonomy too, on rows with a gold reason
        from flywheel.errors import InvalidInputError

        try:
            reasons = write_report(
                out,
                "reason",
                predicted_column="predicted_reason",
                baseline=baseline,
                text_column=text_column,
                field="reason",
            )
        except InvalidInputError:  # no row has a gold reason
            return
        _print_report(reasons, "reason (rows with a gold reason; no reason predicted = wrong)")


def _print_report(files: object, label_column: str) -> None:
    from flywheel.batch.report import ReportFiles

    assert isinstance(files, ReportFiles)
    scores = files.scores
    table = Table(title=f"Report: {label_column} ({scores.rows} labelled rows)")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for c in scores.classes:
        table.add_row(c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support))
    table.caption = f"accuracy {scores.accuracy:.3f} · macro-F1 {scores.macro_f1:.3f}"
    if files.baseline is not None:
        table.caption += f" · baseline accuracy {files.baseline.accuracy:.3f} · macro-F1 {files.baseline.macro_f1:.3f}"
    console.print(table)
    console.print(f"Report: {files.markdown}, {files.json}, {files.png}")
