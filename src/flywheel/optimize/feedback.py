"""Production feedback → training rows: the flywheel's return path.

A thumbs-up keeps the served answer as the gold answer; a correction replaces it (whatever the
rating); a thumbs-down without a correction says the answer was wrong but not what is right, so it
is not a training row (it is counted, and the judge metrics still see such questions in eval sets).
Each row keeps the asking user, so retrieval during optimization runs with that user's access
rights and the demos it produces carry their documents' provenance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def feedback_rows(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Training rows (question, answer, user, gold_doc_ids) and counts of what was used or skipped."""
    rows: list[dict[str, Any]] = []
    counts = {"corrections": 0, "thumbs_up": 0, "skipped_down_without_correction": 0, "skipped_empty": 0}
    seen: set[tuple[str, str]] = set()
    for record in sorted(records, key=lambda r: str(r.get("created_at") or ""), reverse=True):
        question = str(record.get("question") or "").strip()
        correction = str(record.get("correction") or "").strip()
        if not question:
            counts["skipped_empty"] += 1
            continue
        if correction:
            answer, counts["corrections"] = correction, counts["corrections"] + 1
        elif record.get("rating") == "up" and str(record.get("answer") or "").strip():
            answer, counts["thumbs_up"] = str(record["answer"]), counts["thumbs_up"] + 1
        else:
            counts["skipped_down_without_correction" if record.get("rating") == "down" else "skipped_empty"] += 1
            continue
        key = (question.lower(), str(record.get("user")))
        if key in seen:  # the newest feedback on a question wins (records come newest first)
            continue
        seen.add(key)
        citations = record.get("citations") or []
        if isinstance(citations, str):
            citations = json.loads(citations or "[]")
        docs = sorted({c["doc_id"] for c in citations if isinstance(c, dict) and c.get("doc_id")})
        rows.append(
            {
                "question": question,
                "answer": answer,
                "user": record.get("user"),
                "gold_doc_ids": docs if (correction == "" and docs) else None,
                "trace_id": record.get("trace_id"),
            }
        )
    return rows, counts


def export_feedback(records: Iterable[dict[str, Any]], path: Path) -> dict[str, int]:
    """Write feedback as a JSONL dataset that ``flywheel eval``/``optimize --train`` read."""
    rows, counts = feedback_rows(records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"rows": len(rows), **counts}
