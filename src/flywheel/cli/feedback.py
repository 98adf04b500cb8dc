"""``flywheel feedback``: production feedback (thumbs, corrections) as training datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from flywheel.cli.common import console, settings

app = typer.Typer(help="Feedback collected by `flywheel serve`: export it as a dataset.", no_args_is_help=True)


@app.command("export")
def export(
    out: Path = typer.Argument(..., help="JSONL file to write (question, answer, user, gold_doc_ids)."),
    program: str | None = typer.Option(None, "--program", "-p", help="Only feedback on this program."),
    version: str | None = typer.Option(
        None, "--version", help="Only feedback on answers by this registered version of the program."
    ),
) -> None:
    """Write thumbs-up answers and corrections as a dataset for `flywheel eval` / `optimize --train`."""
    from flywheel.optimize.feedback import export_feedback
    from flywheel.stores.feedback import FeedbackStore

    counts = export_feedback(
        FeedbackStore(settings().catalog_url).list_feedback(program=program, program_version=version), out
    )
    console.print(
        f"{counts['rows']} rows written to {out} ({counts['corrections']} corrections, "
        f"{counts['thumbs_up']} thumbs-up; {counts['skipped_down_without_correction']} thumbs-down "
        "without a correction skipped).",
        highlight=False,
    )
