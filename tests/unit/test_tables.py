"""One table reader and one macro-F1 for the whole project."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from flywheel.batch.io import read_table as batch_read_table
from flywheel.batch.report import score
from flywheel.evaluate.datasets import load_dataset, read_rows
from flywheel.evaluate.metrics import classification_report, score_labels
from flywheel.tables import read_table

TRICKY = [
    "first line\r\nsecond line",
    "a paragraph\u2028separator inside",
    'plain "quoted", with a comma',
    "new\nline",
    "carriage\rreturn",
    "  leading spaces kept",
    "0012",
    "NA",
    "",
]


def write_csv(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "sentiment", "reason"])
        for i, text in enumerate(texts):
            writer.writerow([text, "negative" if i % 2 else "positive", "Late Flight" if i % 2 else ""])
    return path


def test_quoted_multi_line_cells_are_read_exactly(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", TRICKY)
    assert [row["text"] for row in read_rows(path)] == TRICKY  # csv.DictReader(text.splitlines()) mangled these
    assert read_table(path, None)["text"].tolist() == TRICKY
    assert batch_read_table(path, "text")["text"].tolist() == TRICKY  # batch inputs use the same reader


def test_datasets_keep_multi_line_texts_and_empty_reasons_are_none(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", TRICKY[:5])
    dataset = load_dataset(path, "classifier")
    assert [e.text for e in dataset.examples] == TRICKY[:5]
    assert [e.reason for e in dataset.examples] == [None, "Late Flight", None, "Late Flight", None]


def test_shared_dev_split_reads_like_pandas() -> None:
    import pandas as pd

    from tests.conftest import shared_data

    path = shared_data("airline_feedback", "dev.csv")
    expected = pd.read_csv(path, dtype=str, keep_default_na=False)["text"].tolist()
    assert [row["text"] for row in read_rows(path)] == expected
    assert len(expected) == 1000


def test_parquet_datasets_are_read_too(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"text": TRICKY[:3], "sentiment": ["negative"] * 3}).to_parquet(tmp_path / "t.parquet")
    assert [row["text"] for row in read_rows(tmp_path / "t.parquet")] == TRICKY[:3]


GOLD = ["neg", "neg", "neg", "pos", "neu", "neu", "pos", "neg"]
PRED = ["neg", "pos", "neg", "pos", "neg", "odd", "pos", None]


def test_macro_f1_is_scikit_learns_over_gold_and_predicted_labels() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    scores = score_labels(GOLD, PRED)
    filled = [p or "(failed)" for p in PRED]
    labels = sorted(set(GOLD) | {p for p in PRED if p})
    assert scores.macro_f1 == pytest.approx(f1_score(GOLD, filled, labels=labels, average="macro", zero_division=0))
    assert scores.accuracy == pytest.approx(accuracy_score(GOLD, filled))
    assert scores.labels == labels and scores.failed == 1


def test_evaluation_and_batch_reports_share_one_definition() -> None:
    report = classification_report(GOLD, PRED)
    batch = score(GOLD, PRED)
    assert report["macro_f1"] == batch.macro_f1 and report["accuracy"] == batch.accuracy
    assert report["matrix"] == batch.matrix
    assert report["per_class"]["odd"]["f1"] == 0.0  # an invented label is charged in both


def test_eval_reports_show_per_class_scores_and_confusion_for_both_fields(tmp_path: Path) -> None:
    from flywheel.evaluate.datasets import dataset_from_rows
    from flywheel.evaluate.report import write_report
    from flywheel.evaluate.runner import evaluate_program
    from tests.unit.fake_classifier import FakeClassifier

    rows = [
        {"text": "flight late", "sentiment": "negative", "reason": "Late Flight"},
        {"text": "I love it", "sentiment": "positive", "reason": ""},
        {"text": "bag lost", "sentiment": "negative", "reason": "Lost Luggage"},
    ]
    result = evaluate_program(FakeClassifier(), dataset_from_rows(rows, "classifier", name="d"), {})
    report = (write_report(result, tmp_path / "r") / "report.md").read_text()
    assert "## sentiment: per class" in report and "## reason: per class" in report
    assert "| gold \\ predicted | Can't Tell | Late Flight | Lost Luggage |" in report
    assert "| Lost Luggage | 1 | 0 | 0 |" in report  # the fake says "Can't Tell" for a lost bag
