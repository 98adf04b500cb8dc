"""Classifier feedback → labelled training rows.

A served classification is recorded as an interaction whose *question* is the text and whose
*answer* is the predicted labels as JSON (``{"sentiment": …, "reason": …}``). Feedback on it becomes a
training row:

- a **correction** names the right labels: JSON (``{"sentiment": "negative", "reason": "Late Flight"}``),
  ``negative: Late Flight`` / ``negative / Late Flight``, a sentiment alone (``neutral``), or a reason
  alone (``Lost Luggage``, which implies negative); labels match case-insensitively;
- a **thumbs-up** without a correction confirms the predicted labels;
- a thumbs-down without a correction says the labels are wrong but not what is right: skipped.

The newest feedback on a text wins. Unparseable corrections are counted, never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flywheel.programs.classify import NEGATIVE, LabelSet


def parse_labels(value: Any, labels: LabelSet) -> tuple[str, str | None] | None:
    """``(sentiment, reason)`` from a correction or a recorded answer; None when it names no known label."""
    sentiments = {s.casefold(): s for s in labels.sentiments}
    reasons = {r.casefold(): r for r in labels.reasons}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                return None
        else:
            for separator in (":", "/", "|"):
                head, sep, tail = text.partition(separator)
                if sep and head.strip().casefold() in sentiments:
                    return _pair(sentiments[head.strip().casefold()], reasons.get(tail.strip().casefold()))
            if text.casefold() in sentiments:
                return _pair(sentiments[text.casefold()], None)
            if text.casefold() in reasons and NEGATIVE in labels.sentiments:
                return NEGATIVE, reasons[text.casefold()]
            return None
    if isinstance(value, dict):
        sentiment = sentiments.get(str(value.get("sentiment") or "").strip().casefold())
        if sentiment is None:
            return None
        return _pair(sentiment, reasons.get(str(value.get("reason") or "").strip().casefold()))
    return None


def _pair(sentiment: str, reason: str | None) -> tuple[str, str | None]:
    return sentiment, reason if sentiment == NEGATIVE else None


def classifier_feedback_rows(
    records: Iterable[dict[str, Any]], labels: LabelSet
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows ``{text, sentiment, reason, label_source="feedback"}`` and counts of what was used or skipped."""
    counts = {
        "corrections": 0,
        "thumbs_up": 0,
        "skipped_down_without_correction": 0,
        "skipped_unparseable": 0,
        "skipped_empty": 0,
    }
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: str(r.get("created_at") or ""), reverse=True):
        text = str(record.get("question") or "").strip()
        correction = str(record.get("correction") or "").strip()
        if not text:
            counts["skipped_empty"] += 1
            continue
        if correction:
            parsed, kind = parse_labels(correction, labels), "corrections"
        elif record.get("rating") == "up":
            parsed, kind = parse_labels(str(record.get("answer") or ""), labels), "thumbs_up"
        else:
            counts["skipped_down_without_correction" if record.get("rating") == "down" else "skipped_empty"] += 1
            continue
        if parsed is None:
            counts["skipped_unparseable"] += 1
            continue
        if text in seen:
            continue
        seen.add(text)
        counts[kind] += 1
        rows.append({"text": text, "sentiment": parsed[0], "reason": parsed[1] or "", "label_source": "feedback"})
    return rows, counts
