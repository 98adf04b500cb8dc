"""Scoring a batch output against labels: accuracy, per-class precision/recall/F1, a confusion matrix.

``write_report(OUT.parquet, label_column="sentiment")`` writes, next to the output,
``OUT.report.json``, ``OUT.report.md`` and ``OUT.confusion.png`` (matplotlib, Agg backend), and with
``baseline=`` an earlier output of the same rows (e.g. the zero-shot program's) it adds a
comparison. :func:`log_report` logs the metrics and files to MLflow; MLflow code lives here, never
in ``flywheel.programs``. Rows without a label are left out; rows that failed count as wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import InvalidInputError
from flywheel.evaluate.metrics import MISSING_PREDICTION, ClassScore, Scores, score_labels
from flywheel.registry.tracking import use_tracking

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.config import Settings

FAILED = MISSING_PREDICTION
__all__ = ["FAILED", "ClassScore", "ReportFiles", "Scores", "confusion_png", "log_report", "score", "write_report"]


@dataclass
class ReportFiles:
    scores: Scores
    json: Path
    markdown: Path
    png: Path
    baseline: Scores | None = None
    skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _clean(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def score(gold: Sequence[Any], predicted: Sequence[Any]) -> Scores:
    """The project's one scoring function (:func:`flywheel.evaluate.metrics.score_labels`)."""
    return score_labels(gold, predicted)


def confusion_png(scores: Scores, path: Path, title: str = "Confusion matrix") -> Path:
    """The confusion matrix as a PNG (gold labels down, predictions across)."""
    # Lazy (start-up time): only this path needs matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    # Lazy (start-up time): only this path needs matplotlib.
    import matplotlib.pyplot as plt

    size = max(4.0, 0.6 * len(scores.columns) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    try:
        image = ax.imshow(scores.matrix, cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(len(scores.columns)), scores.columns, rotation=45, ha="right")
        ax.set_yticks(range(len(scores.labels)), scores.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(f"{title}\naccuracy {scores.accuracy:.3f} · macro-F1 {scores.macro_f1:.3f} · n={scores.rows}")
        peak = max((max(row) for row in scores.matrix), default=0)
        for i, row in enumerate(scores.matrix):
            for j, value in enumerate(row):
                ax.text(
                    j,
                    i,
                    str(value),
                    ha="center",
                    va="center",
                    color="white" if value > peak / 2 else "black",
                    fontsize=9,
                )
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def _markdown(scores: Scores, baseline: Scores | None, source: Path, label_column: str, skipped: int) -> str:
    lines = [
        f"# Classification report: {source.name}",
        "",
        f"Gold labels: `{label_column}`; {scores.rows} labelled rows"
        + (f" ({skipped} without a label left out)" if skipped else "")
        + (f"; {scores.failed} failed rows count as wrong" if scores.failed else "")
        + ".",
        "",
    ]
    if baseline is None:
        lines += [
            "| metric | value |",
            "|---|---|",
            f"| accuracy | {scores.accuracy:.3f} |",
            f"| macro-F1 | {scores.macro_f1:.3f} |",
        ]
    else:
        lines += ["| metric | this run | baseline | change |", "|---|---|---|---|"]
        for name in ("accuracy", "macro_f1"):
            now, before = getattr(scores, name), getattr(baseline, name)
            lines.append(f"| {name.replace('_', '-')} | {now:.3f} | {before:.3f} | {now - before:+.3f} |")
    lines += ["", "| class | precision | recall | F1 | support | predicted |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {c.label} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.support} | {c.predicted} |"
        for c in scores.classes
    ]
    lines += [
        "",
        "Confusion matrix (gold ↓, predicted →):",
        "",
        "| gold \\ predicted | " + " | ".join(scores.columns) + " |",
        "|---" * (len(scores.columns) + 1) + "|",
    ]
    lines += [
        f"| {label} | " + " | ".join(map(str, row)) + " |"
        for label, row in zip(scores.labels, scores.matrix, strict=True)
    ]
    return "\n".join(lines) + "\n"


def _read(path: Path) -> pd.DataFrame:
    # Lazy (start-up time): only this path needs pandas.
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"Cannot read the batch output {path}: {exc}",
            hint="Point at the Parquet file (or Spark output folder) `flywheel classify` wrote.",
        ) from None


def report_paths(output: Path, field: str | None = None) -> tuple[Path, Path, Path]:
    """(json, markdown, png) paths next to a batch output (``OUT.<field>.report.md`` for a second field)."""
    stem = output.name.removesuffix(".parquet") + (f".{field}" if field else "")
    return (
        output.with_name(f"{stem}.report.json"),
        output.with_name(f"{stem}.report.md"),
        output.with_name(f"{stem}.confusion.png"),
    )


def write_report(
    output: Path,
    label_column: str = "sentiment",
    *,
    predicted_column: str = "predicted_sentiment",
    baseline: Path | None = None,
    text_column: str | None = None,
    field: str | None = None,
) -> ReportFiles:
    """Score a batch output and write the report files next to it (see the module docstring); ``field`` names
    the files of a report on another field (``field="reason"`` → ``OUT.reason.report.md``)."""
    output = Path(output)
    frame = _read(output)
    for column in (label_column, predicted_column):
        if column not in frame.columns:
            raise InvalidInputError(
                f"{output} has no column {column!r}.",
                hint=f"Pass --label-column with one of: {', '.join(map(str, frame.columns))}.",
            )
    scores = score(frame[label_column].tolist(), frame[predicted_column].tolist())
    skipped = int(sum(_clean(v) is None for v in frame[label_column]))
    base_scores = None
    if baseline is not None:
        other = _read(Path(baseline))
        if len(other) != len(frame) or predicted_column not in other.columns:
            raise InvalidInputError(
                f"The baseline {baseline} is not an output of the same {len(frame)} rows.",
                hint="Run the baseline program on the same input and pass its --out file.",
            )
        if (
            text_column
            and text_column in other.columns
            and text_column in frame.columns
            and other[text_column].astype(str).tolist() != frame[text_column].astype(str).tolist()
        ):
            raise InvalidInputError(
                f"The baseline {baseline} holds other texts (or another order) than {output}.",
                hint="Run the baseline program on the same input file.",
            )
        base_scores = score(frame[label_column].tolist(), other[predicted_column].tolist())
    json_path, md_path, png_path = report_paths(output, field)
    body = {
        "output": str(output),
        "label_column": label_column,
        "predicted_column": predicted_column,
        "skipped_unlabelled": skipped,
        "scores": scores.to_dict(),
        "baseline": None if base_scores is None else {"output": str(baseline), "scores": base_scores.to_dict()},
    }
    json_path.write_text(json.dumps(body, indent=1), encoding="utf-8")
    md_path.write_text(_markdown(scores, base_scores, output, label_column, skipped), encoding="utf-8")
    confusion_png(scores, png_path, title=f"{label_column}: {output.name}")
    return ReportFiles(scores, json_path, md_path, png_path, base_scores, skipped)


def log_report(
    settings: Settings, files: ReportFiles, *, params: dict[str, Any] | None = None, run_name: str = "classify-report"
) -> str:
    """Log the report's metrics and files to MLflow (Flywheel's tracking store); returns the run id."""
    # Lazy (start-up time): only this path needs MLflow.
    import mlflow

    use_tracking(settings)
    with mlflow.start_run(run_name=run_name) as run:
        metrics = {
            "accuracy": files.scores.accuracy,
            "macro_f1": files.scores.macro_f1,
            "rows": float(files.scores.rows),
            "failed": float(files.scores.failed),
        }
        for c in files.scores.classes:
            key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in c.label)
            metrics |= {f"f1.{key}": c.f1, f"precision.{key}": c.precision, f"recall.{key}": c.recall}
        if files.baseline is not None:
            metrics |= {"baseline.accuracy": files.baseline.accuracy, "baseline.macro_f1": files.baseline.macro_f1}
        mlflow.log_metrics(metrics)
        if params:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        for path in (files.json, files.markdown, files.png):
            mlflow.log_artifact(str(path), artifact_path="report")
        return str(run.info.run_id)
