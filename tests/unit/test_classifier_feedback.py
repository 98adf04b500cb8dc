"""Feedback on served classifications becomes labelled training rows."""

from __future__ import annotations

import json

import pytest

from flywheel.optimize.classifier_feedback import classifier_feedback_rows, parse_labels
from flywheel.programs.classify import load_labels

LABELS = load_labels(None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"sentiment": "negative", "reason": "Late Flight"}', ("negative", "Late Flight")),
        ("negative: lost luggage", ("negative", "Lost Luggage")),
        ("Negative / Late Flight", ("negative", "Late Flight")),
        ("neutral", ("neutral", None)),
        ("positive: Late Flight", ("positive", None)),  # a reason only explains negative feedback
        ("Lost Luggage", ("negative", "Lost Luggage")),  # a reason alone implies negative
        ("it was fine I guess", None),
        ('{"sentiment": "meh"}', None),
    ],
)
def test_corrections_name_labels_in_several_forms(value: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_labels(value, LABELS) == expected


def test_rows_from_corrections_and_thumbs_up_newest_first() -> None:
    answer = json.dumps({"sentiment": "negative", "reason": "Late Flight"})
    records = [
        {
            "question": "bag gone",
            "answer": answer,
            "rating": "down",
            "correction": "negative: Lost Luggage",
            "created_at": "2026-01-02",
        },
        {"question": "bag gone", "answer": answer, "rating": "up", "created_at": "2026-01-01"},
        {"question": "late again", "answer": answer, "rating": "up", "created_at": "2026-01-01"},
        {"question": "who knows", "answer": answer, "rating": "down", "created_at": "2026-01-01"},
        {"question": "huh", "answer": answer, "rating": "down", "correction": "no idea", "created_at": "2026-01-01"},
    ]
    rows, counts = classifier_feedback_rows(records, LABELS)
    assert rows == [
        {"text": "bag gone", "sentiment": "negative", "reason": "Lost Luggage", "label_source": "feedback"},
        {"text": "late again", "sentiment": "negative", "reason": "Late Flight", "label_source": "feedback"},
    ]
    assert counts["corrections"] == 1 and counts["thumbs_up"] == 1
    assert counts["skipped_down_without_correction"] == 1 and counts["skipped_unparseable"] == 1


def test_served_classifications_are_recorded_as_labels_feedback_can_confirm() -> None:
    from flywheel.serve.routes.invocations import answer_text

    recorded = answer_text({"sentiment": "negative", "reason": "Late Flight", "justification": "…", "error": None})
    assert parse_labels(recorded, LABELS) == ("negative", "Late Flight")
    assert answer_text({"answer": "42", "citations": "[]"}) == "42"
