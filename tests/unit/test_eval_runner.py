"""The evaluation runner, reports and MLflow run logging, with DummyLM."""

from __future__ import annotations

import json

import dspy
from dspy.utils import DummyLM

from flywheel.config import load_settings
from flywheel.evaluate.catalog import resolve_metrics
from flywheel.evaluate.datasets import dataset_from_rows
from flywheel.evaluate.report import write_report
from flywheel.evaluate.runner import evaluate_program
from flywheel.optimize.feedback import export_feedback, feedback_rows


class Flaky(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.classify = dspy.Predict("text -> sentiment")

    def forward(self, text: str) -> dspy.Prediction:
        if "boom" in text:
            raise RuntimeError("the program crashed")
        return self.classify(text=text)


ROWS = [
    {"text": "late again", "sentiment": "negative"},
    {"text": "thanks!", "sentiment": "positive"},
    {"text": "boom", "sentiment": "neutral"},
    {"text": "where is my bag", "sentiment": "negative"},
]


def run_eval():
    data = dataset_from_rows(ROWS, "classifier", name="tweets")
    metrics = resolve_metrics(["accuracy", "macro_f1"], "classifier", composites={})
    lm = DummyLM([{"sentiment": "negative"}] * 3, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return evaluate_program(Flaky(), data, metrics, name="flaky", threads=2), data


def test_failures_are_recorded_scored_zero_and_the_run_goes_on() -> None:
    result, _ = run_eval()
    assert len(result.examples) == 4 and result.errors == 1
    crashed = next(e for e in result.examples if e.error)
    assert "the program crashed" in crashed.error and crashed.scores["accuracy"] == 0.0
    assert result.metrics["accuracy"] == 0.5  # 2 of 4 (the crash counts as wrong)
    assert result.lm_calls == 3  # counted across the worker threads
    assert 0 < result.metrics["macro_f1"] < 1
    assert result.extra["sentiment_report"]["n"] == 4 and "reason_report" not in result.extra


def test_report_puts_failures_first_and_draws_plots(tmp_path) -> None:
    result, _ = run_eval()
    baseline, _ = run_eval()
    out = write_report(result, tmp_path / "report", metric="accuracy", baseline=baseline)
    lines = (out / "examples.csv").read_text().splitlines()
    assert "the program crashed" in lines[1]  # errors first
    assert (out / "scores.png").stat().st_size > 1000 and (out / "before_after.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["candidate"]["errors"] == 1
    assert "| accuracy |" in (out / "report.md").read_text()


def test_runs_are_logged_to_mlflow(tmp_path) -> None:
    import mlflow

    from flywheel.registry.tracking import log_run_results

    settings = load_settings()
    result, _ = run_eval()
    report = write_report(result, tmp_path / "report")
    run_id = log_run_results(
        settings,
        run_name="eval-test",
        params={"program": "flaky"},
        metrics={**result.metrics, "recall@5": 0.5, "none": None},
        report_dir=report,
    )
    run = mlflow.get_run(run_id)
    assert run.data.metrics["accuracy"] == 0.5 and run.data.metrics["recall_at_5"] == 0.5
    assert run.data.params["program"] == "flaky"
    assert settings.tracking_uri.startswith("sqlite:///") and str(settings.home) in settings.tracking_uri
    files = {f.path for f in mlflow.MlflowClient().list_artifacts(run_id, "report")}
    assert "report/report.md" in files


def test_feedback_becomes_training_rows(tmp_path) -> None:
    records = [
        {
            "trace_id": "t1",
            "user": "alice",
            "question": "Oil?",
            "answer": "30 min",
            "rating": "up",
            "citations": [{"doc_id": "d1"}],
            "created_at": "2026-01-01",
        },
        {
            "trace_id": "t2",
            "user": "bob",
            "question": "Fuel?",
            "answer": "wrong",
            "rating": "down",
            "correction": "45 minutes",
            "created_at": "2026-01-02",
        },
        {"trace_id": "t3", "user": "bob", "question": "APU?", "answer": "no", "rating": "down"},
        {
            "trace_id": "t4",
            "user": "alice",
            "question": "oil?",
            "answer": "old",
            "rating": "up",
            "created_at": "2025-12-01",
        },
    ]
    rows, counts = feedback_rows(records)
    assert [(r["question"], r["answer"], r["user"]) for r in rows] == [
        ("Fuel?", "45 minutes", "bob"),
        ("Oil?", "30 min", "alice"),
    ]
    assert rows[1]["gold_doc_ids"] == ["d1"] and rows[0]["gold_doc_ids"] is None
    assert counts["skipped_down_without_correction"] == 1
    summary = export_feedback(records, tmp_path / "fb.jsonl")
    assert summary["rows"] == 2 and len((tmp_path / "fb.jsonl").read_text().splitlines()) == 2
    data = dataset_from_rows(rows, "qa", name="feedback", principal_for=lambda u: u)
    assert [e.principal for e in data.examples] == ["bob", "alice"]


def test_teacher_labels_the_pool_and_failures_are_dropped() -> None:
    from flywheel.optimize.pseudo_label import label_pool

    pool = dataset_from_rows(
        [{"text": "late again"}, {"text": "boom"}, {"text": "great crew"}], "classifier", name="pool"
    )
    assert not pool.labelled
    teacher = DummyLM([{"sentiment": "negative"}, {"sentiment": "positive"}], adapter=dspy.JSONAdapter())
    student_lm = DummyLM([], adapter=dspy.JSONAdapter())
    with dspy.context(lm=student_lm, adapter=dspy.JSONAdapter()):
        labelled, dropped = label_pool(Flaky(), pool, teacher_lm=teacher, threads=1, fields=("sentiment",))
    assert dropped == 1 and student_lm.history == []
    assert [(e.text, e.sentiment) for e in labelled.examples] == [
        ("late again", "negative"),
        ("great crew", "positive"),
    ]
    assert set(labelled.examples[0].inputs().keys()) == {"text"}
