"""Evaluation reports: a per-metric table, a per-example table with failures first, and plots.

Written to a directory: ``summary.json``, ``report.md``, ``examples.csv``, ``scores.png`` (score
distributions) and, when a baseline is given, ``before_after.png``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from flywheel.evaluate.runner import EvalResult

FAILURE_THRESHOLD = 0.5


def _primary(result: EvalResult, metric: str | None) -> str | None:
    names = [m for m in result.metrics if result.metrics[m] is not None]
    return metric if metric in result.metrics else (names[0] if names else None)


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ordered_examples(result: EvalResult, metric: str | None) -> list[Any]:
    """Errors first, then by ascending score on the primary metric."""
    primary = _primary(result, metric)
    return sorted(result.examples, key=lambda e: (e.error is None, e.score(primary) if primary else 0.0, e.index))


def write_report(
    result: EvalResult, directory: Path, *, metric: str | None = None, baseline: EvalResult | None = None
) -> Path:
    """Write the report files; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    summary = {"candidate": result.to_dict(), "baseline": baseline.to_dict() if baseline else None}
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    rows = ordered_examples(result, metric)
    metric_names = list(result.metrics)
    with (directory / "examples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "error", *metric_names, "inputs", "outputs", "latency_s"])
        for e in rows:
            writer.writerow(
                [
                    e.index,
                    e.error or "",
                    *[_fmt(e.scores.get(m)) for m in metric_names],
                    json.dumps(e.inputs, default=str),
                    json.dumps(e.outputs, default=str),
                    f"{e.latency_s:.3f}",
                ]
            )
    (directory / "report.md").write_text(_markdown(result, rows, metric, baseline))
    _plots(result, directory, baseline)
    return directory


def _markdown(result: EvalResult, rows: list[Any], metric: str | None, baseline: EvalResult | None) -> str:
    lines = [
        f"# Evaluation: {result.program} on {result.dataset}",
        "",
        f"{len(result.examples)} examples, {result.errors} errors, {result.lm_calls} LM calls, {result.wall_s:.1f} s.",
        "",
        "| metric | " + ("baseline | " if baseline else "") + "score |",
        "|---|" + ("---|" if baseline else "") + "---|",
    ]
    for name, value in result.metrics.items():
        before = f" {_fmt(baseline.metrics.get(name))} |" if baseline else ""
        lines.append(f"| {name} |{before} {_fmt(value)} |")
    for field in ("sentiment", "reason"):
        lines += _class_tables(field, result.extra.get(f"{field}_report"))
    primary = _primary(result, metric)
    lines += [
        "",
        f"## Examples (errors first, then lowest {primary or 'score'} first)",
        "",
        "| # | score | error | input | output |",
        "|---|---|---|---|---|",
    ]
    for e in rows[:50]:
        shown_in = e.inputs.get("question") or e.inputs.get("text") or e.inputs
        shown_out = e.outputs.get("answer") or {k: e.outputs.get(k) for k in ("sentiment", "reason")}
        lines.append(
            f"| {e.index} | {_fmt(e.scores.get(primary) if primary else None)} | "
            f"{_short(e.error or '', 60)} | {_short(shown_in).replace('|', '/')} | "
            f"{_short(shown_out).replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def _class_tables(field: str, report: dict[str, Any] | None) -> list[str]:
    """Per-class precision/recall/F1 and the confusion matrix of a classifier field (from the runner)."""
    if not report or "matrix" not in report:
        return []
    lines = [
        "",
        f"## {field}: per class (accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f})",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
        for label, c in report["per_class"].items()
    ]
    lines += [
        "",
        f"Confusion matrix of {field} (gold ↓, predicted →; `(failed)`: none predicted):",
        "",
        "| gold \\ predicted | " + " | ".join(report["columns"]) + " |",
        "|---" * (len(report["columns"]) + 1) + "|",
    ]
    lines += [
        f"| {label} | " + " | ".join(map(str, row)) + " |"
        for label, row in zip(report["labels"], report["matrix"], strict=True)
    ]
    return lines


def _plots(result: EvalResult, directory: Path, baseline: EvalResult | None) -> None:
    # Lazy (start-up time): only this path needs matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    # Lazy (start-up time): only this path needs matplotlib.
    import matplotlib.pyplot as plt

    per_example = [m for m in result.metrics if any(e.scores.get(m) is not None for e in result.examples)]
    if per_example:
        fig, axes = plt.subplots(1, len(per_example), figsize=(3.2 * len(per_example), 2.8), squeeze=False)
        for ax, name in zip(axes[0], per_example, strict=True):
            values = [e.scores[name] for e in result.examples if e.scores.get(name) is not None]
            ax.hist(values, bins=10, range=(0, 1), color="#3b6ea5")
            ax.set_title(name, fontsize=9)
            ax.set_xlim(0, 1)
        fig.suptitle(f"Score distributions: {result.program}", fontsize=10)
        fig.tight_layout()
        fig.savefig(directory / "scores.png", dpi=110)
        plt.close(fig)
    if baseline is not None:
        names = [m for m in result.metrics if result.metrics[m] is not None and baseline.metrics.get(m) is not None]
        if names:
            fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(names)), 3))
            xs = range(len(names))
            ax.bar([x - 0.2 for x in xs], [baseline.metrics[m] for m in names], width=0.4, label="before")
            ax.bar([x + 0.2 for x in xs], [result.metrics[m] for m in names], width=0.4, label="after")
            ax.set_xticks(list(xs), names, rotation=20, fontsize=8)
            ax.set_ylim(0, 1)
            ax.legend(fontsize=8)
            ax.set_title("Held-out metrics before and after", fontsize=10)
            fig.tight_layout()
            fig.savefig(directory / "before_after.png", dpi=110)
            plt.close(fig)
